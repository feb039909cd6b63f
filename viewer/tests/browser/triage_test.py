#!/usr/bin/env python3
"""Headless Chromium walk through the triage flow.

Usage: triage_test.py BASE_URL FINDINGS_PATH SCREENSHOT
  BASE_URL       e.g. http://127.0.0.1:PORT/proxy-<uuid>
  FINDINGS_PATH  path of a project's findings page below BASE_URL, e.g. /projects/1

As user alice: the findings table lists findings; open one; set "false positive" with a
comment; submit; reload; the choice is kept. With a forged `Authorization: SWAMP alice`
instead of the front door's proof: a 403 page. The viewer's API key comes in VIEWER_APIKEY. Exits non-zero with a
message on the first failed expectation. Driven by viewer/tests/browser.rs.
"""
import os
import shutil
import sys
import tempfile

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

# The shared Chromium set-up lives in scripts/lib (three levels up from here).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "lib"))
from headless_chromium import as_user, browser, fail, forged  # noqa: E402


def main():
    base, findings_path, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    driver = browser(profile)
    try:
        # A form post reloads the page: an element found just before can go stale while read.
        wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])
        as_user(driver, "alice", os.environ["VIEWER_APIKEY"])
        driver.get(base + findings_path)
        rows = driver.find_elements(By.CSS_SELECTOR, "#findings tr td.msg a")
        if len(rows) < 2:
            fail(f"expected findings in the table, page says: {driver.find_element(By.TAG_NAME, 'body').text[:300]}")
        count = driver.find_element(By.ID, "count").text
        if "of" not in count:
            fail(f"no findings count: {count!r}")

        # Filter by text through the form, as a user would.
        box = driver.find_element(By.NAME, "q")
        box.send_keys("moved")
        driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
        wait.until(lambda d: "q=moved" in d.current_url)
        rows = driver.find_elements(By.CSS_SELECTOR, "#findings tr td.msg a")
        if len(rows) != 1:
            fail(f"text filter 'moved' shows {len(rows)} rows")
        rows[0].click()
        wait.until(lambda d: "/findings/" in d.current_url)
        finding_url = driver.current_url
        if "move occurred here" not in driver.page_source:
            fail("finding page lacks the related location's message")

        Select(driver.find_element(By.ID, "status")).select_by_value("false_positive")
        comment = driver.find_element(By.ID, "comment")
        comment.clear()
        comment.send_keys("Moved-from vector is reassigned first — not a bug.")
        driver.find_element(By.ID, "save").click()
        wait.until(lambda d: "Last triaged by alice" in d.page_source)

        driver.get(finding_url)  # a fresh load, not the POST's response
        chosen = Select(driver.find_element(By.ID, "status")).first_selected_option.get_attribute("value")
        if chosen != "false_positive":
            fail(f"status after reload is {chosen!r}")
        text = driver.find_element(By.ID, "comment").get_attribute("value")
        if text != "Moved-from vector is reassigned first — not a bug.":
            fail(f"comment after reload is {text!r}")

        driver.get(base + findings_path + "?status=false_positive")
        statuses = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#findings td.status")]
        if statuses != ["false_positive"]:
            fail(f"status filter shows {statuses}")
        driver.get(base + findings_path)
        driver.save_screenshot(screenshot)

        forged(driver, "alice")
        driver.get(base + findings_path)
        body = driver.find_element(By.TAG_NAME, "body").text
        if "Access denied" not in body:
            fail(f"a forged user header was not refused: {body[:300]!r}")
        if driver.find_elements(By.CSS_SELECTOR, "#findings"):
            fail("a forged user header sees the findings table")
        print("browser triage flow ok")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
