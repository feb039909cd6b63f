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


def as_user(driver, user):
    """The front end's header (`Authorization: SWAMP <user>`), added to every request."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"SWAMP {user}"}})
