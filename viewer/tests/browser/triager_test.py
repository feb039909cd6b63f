#!/usr/bin/env python3
"""Headless Chromium walk through what a triager uses: facets, source view, code flow,
history in local time, bulk triage, both exports, and a long path that must wrap.

Usage: triager_test.py BASE_URL PROJECT_PATH DOWNLOAD_DIR
  BASE_URL      e.g. http://127.0.0.1:PORT/proxy-<uuid>
  PROJECT_PATH  the seeded project's findings page below BASE_URL, e.g. /projects/1
  DOWNLOAD_DIR  an empty directory for the exports

The project holds tests/fixtures/spec/flows.sarif (CodeQL, with its source archive),
tests/fixtures/multi_tool.sarif, and one finding of tool "lint" on a 4 KiB path.
Exits non-zero with a message on the first failed expectation. Driven by
viewer/tests/browser.rs.
"""
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "lib"))
from headless_chromium import as_user, browser, fail  # noqa: E402


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#findings td.status")


def downloaded(directory, suffix, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        done = [f for f in os.listdir(directory) if f.endswith(suffix)]
        if done:
            with open(os.path.join(directory, done[0]), encoding="utf-8") as f:
                return f.read()
        time.sleep(0.2)
    fail(f"no {suffix} download in {directory}: {os.listdir(directory)}")


def main():
    base, project_path, downloads = sys.argv[1], sys.argv[2], sys.argv[3]
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    driver = browser(profile)
    try:
        # A form post reloads the page: an element found just before can go stale while read.
        wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])
        as_user(driver, "alice", os.environ["VIEWER_APIKEY"])
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        driver.get(base + project_path)

        # A 4 KiB path wraps instead of widening the page.
        width = driver.execute_script("return document.documentElement.scrollWidth")
        if width > driver.execute_script("return window.innerWidth") + 2:
            fail(f"the findings page is {width}px wide")

        # Facets: follow "CodeQL" under Tool; the filter shows as active.
        total = len(rows(driver))
        link = [a for a in driver.find_elements(By.CSS_SELECTOR, "#facets a") if a.text.startswith("CodeQL (")]
        if len(link) != 1:
            fail(f"no CodeQL facet: {driver.find_element(By.ID, 'facets').text!r}")
        link[0].click()
        wait.until(lambda d: "tool=CodeQL" in d.current_url)
        if len(rows(driver)) != 1 or total < 3:
            fail(f"facet shows {len(rows(driver))} of {total} rows")
        if "Tool = CodeQL" not in driver.find_element(By.ID, "active-filters").text:
            fail("the active filter is not shown")

        # The finding: source lines with the hit marked, the code flow, the whole file.
        driver.find_element(By.CSS_SELECTOR, "#findings td.msg a").click()
        wait.until(lambda d: "/findings/" in d.current_url)
        finding_url = driver.current_url
        hit = driver.find_element(By.CSS_SELECTOR, "#loc-1 .hit").text
        if "cur.execute(q)" not in hit:
            fail(f"marked line is {hit!r}")
        steps = driver.find_elements(By.CSS_SELECTOR, "#flow-1 ol.flow > li")
        if len(steps) != 3 or "request.args is a source" not in steps[0].text:
            fail(f"code flow steps: {[s.text[:60] for s in steps]}")
        driver.find_element(By.CSS_SELECTOR, "#loc-1 a.file-link").click()
        wait.until(lambda d: "/source?" in d.current_url)
        if "return cur.fetchall()" not in driver.find_element(By.ID, "L7").text:
            fail("the whole-file view lacks line 7")

        # Triage twice; the history lists both, newest first, in local time (the script
        # ran under the page's CSP).
        for status, reason in (("unresolved", "looks real"), ("escalated", "needs the DB owner")):
            driver.get(finding_url)
            Select(driver.find_element(By.ID, "status")).select_by_value(status)
            box = driver.find_element(By.ID, "comment")
            box.clear()
            box.send_keys(reason)
            driver.find_element(By.ID, "save").click()
            wait.until(lambda d, r=reason: r in d.find_element(By.ID, "history").text)
        history = driver.find_elements(By.CSS_SELECTOR, "#history tr")[1:]
        if len(history) != 2 or "escalated" not in history[0].text or "unresolved" not in history[1].text:
            fail(f"history: {[h.text for h in history]}")
        when = driver.find_element(By.CSS_SELECTOR, "#history time")
        if "UTC" in when.text or not when.get_attribute("title").endswith("UTC"):
            fail(f"time not shown in local time: {when.text!r} (title {when.get_attribute('title')!r})")

        # Bulk triage of a selection: gcc's findings, through the facet and the form.
        driver.get(base + project_path + "?tool=gcc")
        n = len(rows(driver))
        Select(driver.find_element(By.ID, "bulk-status")).select_by_value("ignored")
        driver.find_element(By.ID, "bulk-comment").send_keys("third-party code")
        driver.find_element(By.ID, "bulk-save").click()
        wait.until(lambda d: all(td.text == "ignored" for td in rows(d)) and len(rows(d)) == n)
        if "tool=gcc" not in driver.current_url or n < 2:
            fail(f"bulk triage came back to {driver.current_url} with {n} rows")
        driver.get(base + project_path + "?status=ignored")
        if len(rows(driver)) != n:
            fail("bulk triage touched other tools' findings")

        # Exports of the whole project.
        driver.get(base + project_path)
        driver.find_element(By.ID, "export-csv").click()
        table = list(csv.reader(io.StringIO(downloaded(downloads, ".csv"))))
        if table[0][:3] != ["id", "severity", "tool"] or len(table) != 1 + total:
            fail(f"CSV has {len(table)} lines for {total} findings: {table[:2]}")
        if sum(1 for r in table[1:] if r[8] == "ignored" and r[9] == "third-party code") != n:
            fail("CSV lacks the bulk triage")
        driver.find_element(By.ID, "export-sarif").click()
        log = json.loads(downloaded(downloads, ".sarif"))
        results = [r for run in log["runs"] for r in run["results"]]
        suppressed = [r for r in results if r.get("suppressions")]
        if log["version"] != "2.1.0" or len(results) != total or len(suppressed) != n:
            fail(f"SARIF: {len(results)} results, {len(suppressed)} suppressed")
        print("browser triager flow ok")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
