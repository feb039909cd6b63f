#!/usr/bin/env python3
"""What a user does with the URL launchviewer printed: open it in headless Chromium.

Usage: open_findings.py URL MIN_ROWS MESSAGE COMMENT SCREENSHOT
  URL         the READY line's URL, exactly as printed: agent-monitor's front door with a
              single-use login token (http://127.0.0.1:P/proxy-<uuid>/projects/N?vrun_login=…)
  MIN_ROWS    the findings table must list at least this many findings
  MESSAGE     a finding message that must be listed; that finding is triaged
  COMMENT     the triage comment (plain ASCII)
  SCREENSHOT  PNG of the findings page after the triage

No headers are added: the link signs the user in. Load it (the token is exchanged for a
session cookie and leaves the address bar), check the rows, open the finding whose message
is MESSAGE, set it to "false positive" with COMMENT through the form, reload to see it kept
(the session holds), screenshot the findings table; then open the printed URL once more and
expect the "already used" page (each link works once). Prints `TRIAGED <finding id>` on
success; exits non-zero with a message on the first failed expectation. Driven by
launchviewer/tests/front_door.rs and e2e_vm.rs; run it with /usr/bin/python3 (Debian's
python3-selenium, chromium, chromium-driver).
"""
import os
import shutil
import sys
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

# The shared Chromium set-up lives in scripts/lib (three levels up from here).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "lib"))
from headless_chromium import browser, fail  # noqa: E402


def main():
    url, min_rows, message, comment, screenshot = sys.argv[1:6]
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    driver = browser(profile, window_size="1400,1000")
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        clean = driver.current_url
        if "vrun_login" in clean or "/projects/" not in clean:
            fail(f"the sign-in did not land on the clean findings URL: {clean}")
        links = driver.find_elements(By.CSS_SELECTOR, "#findings tr td.msg a")
        if len(links) < int(min_rows):
            body = driver.find_element(By.TAG_NAME, "body").text[:300]
            fail(f"expected at least {min_rows} findings, the table has {len(links)}; page says: {body!r}")
        target = [a for a in links if a.text == message]
        if len(target) != 1:
            fail(f"expected one finding {message!r}, found {len(target)}")
        target[0].click()
        wait.until(lambda d: "/findings/" in d.current_url)
        finding_url = driver.current_url
        finding_id = finding_url.rstrip("/").rsplit("/", 1)[1]

        Select(driver.find_element(By.ID, "status")).select_by_value("false_positive")
        box = driver.find_element(By.ID, "comment")
        box.clear()
        box.send_keys(comment)
        driver.find_element(By.ID, "save").click()
        wait.until(lambda d: "Last triaged by alice" in d.page_source)

        driver.get(finding_url)  # a fresh load, not the POST's answer
        chosen = Select(driver.find_element(By.ID, "status")).first_selected_option.get_attribute("value")
        if chosen != "false_positive":
            fail(f"status after reload is {chosen!r}")
        if driver.find_element(By.ID, "comment").get_attribute("value") != comment:
            fail("the comment was not kept")

        driver.get(clean)
        statuses = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#findings td.status")]
        if statuses.count("false_positive") != 1:
            fail(f"the findings table shows statuses {statuses}")
        driver.save_screenshot(screenshot)

        driver.get(url)
        body = driver.find_element(By.TAG_NAME, "body").text
        if "already used" not in body:
            fail(f"the printed link worked twice: {body[:300]!r}")
        print(f"TRIAGED {finding_id}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
