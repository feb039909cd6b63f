"""Debian's headless Chromium driven by selenium, as the browser tests use it.

Shared by viewer/tests/browser/triage_test.py and launchviewer/tests/e2e/open_findings.py.
Run with /usr/bin/python3 (Debian's python3-selenium). The background-networking flags
matter here: this machine has no network, and Chromium's own connections are refused.
"""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def browser(user_data_dir, window_size="1280,900"):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--window-size={window_size}", f"--user-data-dir={user_data_dir}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def proof(apikey, user, now=None):
    """`X-Vrun-Proof` as agent-monitor's front door makes it (vrun_proto::frontdoor): an
    HMAC-SHA-256 under a key derived from the viewer's API key, over length-prefixed parts."""
    import hashlib
    import hmac
    import struct
    import time

    def mac(key, parts):
        m = hmac.new(key, digestmod=hashlib.sha256)
        for p in parts:
            b = p.encode()
            m.update(struct.pack(">Q", len(b)))
            m.update(b)
        return m

    t = str(int(time.time() if now is None else now))
    key = mac(apikey.encode(), ["vrun front door proof v1"]).digest()
    return f"v1:{t}:{user}:{mac(key, ['proof', t, user]).hexdigest()}"


def as_user(driver, user, apikey):
    """What the front door adds (a proof for `user`), added to every request: for tests that
    drive a viewer directly, without agent-monitor's front door in between."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-Vrun-Proof": proof(apikey, user)}})


def forged(driver, user):
    """What anyone on the host could send straight to a viewer's port: the old user header."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"SWAMP {user}"}})
