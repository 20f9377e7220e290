"""Sets the server up as the OpenAPI document's examples assume.

Usage: DESKREC_ADMIN_TOKEN=... seed.py URL

The examples import users in the roles `agent` and `team-lead`; roles are
made first, as docs/server.md says (`PUT /api/v1/admin/roles/{name}`).
"""

import os
import sys

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

url, token = sys.argv[1], os.environ["DESKREC_ADMIN_TOKEN"]
roles = {"agent": ["record_screen"], "team-lead": ["view_recordings"]}
for name, permissions in roles.items():
    r = requests.put(
        f"{url}/api/v1/admin/roles/{name}",
        json={"permissions": permissions},
        headers={"Authorization": f"Bearer {token}"},
        # The server's certificate is its own; schemathesis does not check
        # it either (--tls-verify false) on this loopback test server.
        verify=False,
        timeout=30,
    )
    r.raise_for_status()
    print(f"role {name}: {permissions}")
