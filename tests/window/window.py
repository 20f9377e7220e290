"""The tray app's real window, driven through tauri-driver and WebKitWebDriver.

Run by `cargo xtask window`, which starts the real server, makes `ann`
eligible with a slow upload cap, and passes everything through the
environment:

  DESKREC_TRAY    the deskrec-tray binary
  DESKREC_ARGS    its arguments, JSON (data dir, --enroll URL TOKEN, ...)
  DESKREC_URL     the server's https URL
  DESKREC_CACERT  the server's certificate (trusted, never --insecure)
  DESKREC_ADMIN   the admin token

The window must show "recording"; a contact imported on the server appears
as uploading, its progress bar advances, and it ends as uploaded.
Prints one line per check and 'N passed, N failed'.
"""

import json
import os
import ssl
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions

LIMIT = 60
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)


def wait(what, fn, limit=LIMIT):
    end = time.time() + limit
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page may be reloading
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


def admin(method, path, body=None):
    ctx = ssl.create_default_context(cafile=os.environ["DESKREC_CACERT"])
    ctx.check_hostname = False  # the certificate names the server, not 127.0.0.1
    req = urllib.request.Request(
        os.environ["DESKREC_URL"] + "/api/v1/admin" + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": "Bearer " + os.environ["DESKREC_ADMIN"],
                 "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx) as r:
        text = r.read()
        return json.loads(text) if text.strip() else None


def main():
    options = ArgOptions()
    options.set_capability("browserName", "wry")
    options.set_capability("tauri:options", {
        "application": os.environ["DESKREC_TRAY"],
        "args": json.loads(os.environ["DESKREC_ARGS"]),
    })
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=options)
    try:
        kind = wait("the recording banner", lambda: (
            driver.find_element(By.ID, "banner").get_attribute("data-kind") == "recording"
            and driver.find_element(By.ID, "headline").text))
        check("the window shows recording", kind.startswith("Recording"), kind)

        # A contact inside what the app has recorded: from now (recording
        # is on) for a few seconds.
        start = datetime.now(timezone.utc)
        time.sleep(6)
        end = datetime.now(timezone.utc) - timedelta(seconds=1)
        admin("POST", "/contacts", {"contacts": [{
            "contact_id": "window-1", "windows_login": "ann",
            "start": start.isoformat(), "end": end.isoformat()}]})

        row = '[data-contact="window-1"]'
        def uploading():
            el = driver.find_element(By.CSS_SELECTOR, row)
            if el.get_attribute("data-state") != "uploading":
                return None
            bar = el.find_element(By.TAG_NAME, "progress")
            return float(bar.get_attribute("value") or 0), float(bar.get_attribute("max") or 1)
        first = wait("the contact uploading", uploading)
        check("the imported contact appears as uploading", True)
        later = wait("its progress advancing",
                     lambda: (lambda p: p if p and p[0] > first[0] else None)(uploading()))
        check("its progress advances", later[0] > first[0], f"{first} then {later}")
        done = wait("the contact uploaded", lambda: driver.find_element(
            By.CSS_SELECTOR, row).get_attribute("data-state") == "done", limit=120)
        check("it ends as uploaded", bool(done))
        server = admin("GET", "/contacts/window-1")
        check("the server has it", server.get("status") == "uploaded", json.dumps(server))
    except Exception as e:
        check("the window test ran to its end", False, repr(e))
    finally:
        driver.quit()
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
