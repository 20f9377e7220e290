"""schemathesis hooks for `cargo xtask openapi` (SCHEMATHESIS_HOOKS=hooks).

A tus PATCH body (`application/offset+octet-stream`) is bytes, as an
`application/octet-stream` body is.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
