#!/usr/bin/env python3
"""Browser test of the dashboard: real headless Chromium against a running cronhook.

Run by .ci/ui-test, which starts the server with API_TOKEN set. Each step prints one line;
the run ends with 'ui-test: N passed, N failed'. Every wait is bounded.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_BODY = "<script>alert(2)</script>"
JOB_PAGE = re.compile(r"#/jobs/([0-9a-f-]{36})$")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ui")
DESKTOP = (1280, 800)
DOCS = (1280, 680)
PHONE = (390, 844)

# Records dialogs and CSP violations in every document the browser loads, before the
# page's own script runs. The dialogs are not shown: a call is a failure by itself.
HOOKS = """
window.__alerts = [];
for (const k of ['alert', 'confirm', 'prompt']) {
  window[k] = function (m) { window.__alerts.push(k + ': ' + String(m)); return null; };
}
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


class Dashboard:
    """The browser, the server's address and what the checks collect on the way."""

    def __init__(self, base, token, shots, docs_shot):
        self.base = base.rstrip("/")
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base))
        self.token = token
        self.shots = shots
        self.docs_shot = docs_shot
        self.requests = []
        self.console = []
        self.csp = []
        self.alerts = []
        self.shot_no = 0
        self.driver = start_browser()
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})
        self.size(DESKTOP)

    # --- the API, straight (setup and checks), with the token.

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def create_job(self, **fields):
        status, body = self.call("POST", "/jobs", fields)
        assert status == 201, (status, body)
        return body["jobId"]

    # --- the browser.

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def go(self, hash_path):
        """Opens a route of the page, without reloading it."""
        self.js("location.hash = arguments[0]", hash_path)

    def load(self, hash_path="#/"):
        """Loads the page anew at a route."""
        self.collect()
        # Through a blank page: a URL that differs only in its fragment would not reload.
        self.driver.get("about:blank")
        self.driver.get(self.base + "/ui" + hash_path)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css):
        els = self.finds(css)
        return els[0] if els and els[0].is_displayed() else None

    def wait(self, what, fn, timeout=10.0):
        """Waits until fn() is truthy and returns it; fails naming `what`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = fn()
                if value:
                    return value
            except (StaleElementReferenceException, NoSuchElementException) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last!r})")

    def click(self, what, css, timeout=10.0):
        """Clicks the element `css` once it is shown, finding it again if it is redrawn."""

        def attempt():
            el = self.visible(css)
            if el is None or not el.is_enabled():
                return False
            el.click()
            return True

        self.wait(f"{what} to click", attempt, timeout)

    def type_into(self, css, text):
        el = self.find(css)
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.DELETE)
        if text:
            el.send_keys(text)

    def text(self, css):
        el = self.visible(css)
        return el.text if el else ""

    def shot(self, name):
        self.shot_no += 1
        path = os.path.join(self.shots, f"{self.shot_no:02d}-{name}.png")
        self.driver.save_screenshot(path)

    def size(self, wh, mobile=False):
        """Sets the page's viewport exactly (the window's size includes the browser's frame)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": wh[0], "height": wh[1], "deviceScaleFactor": 1, "mobile": mobile},
        )

    def collect(self):
        """Gathers the logs, dialogs and CSP violations so far (before a reload drops them)."""
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
        self.console.extend(self.driver.get_log("browser"))
        try:
            got = self.js("return [window.__alerts || [], window.__csp || []]")
        except WebDriverException:
            got = [[], []]
        self.alerts.extend(got[0])
        self.csp.extend(got[1])
        self.js("if (window.__alerts) { window.__alerts = []; window.__csp = []; }")

    def row(self, job_id):
        return f'tr.job-row[data-job-id="{job_id}"]'

    def quit(self):
        self.driver.quit()


def start_browser():
    """Debian's Chromium, headless, with its network limited to this machine."""
    opts = Options()
    binary = "/usr/lib/chromium/chromium"
    opts.binary_location = binary if os.path.exists(binary) else shutil.which("chromium")
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    opts.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    opts.set_capability("unhandledPromptBehavior", "ignore")
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def instants(d):
    return [
        datetime.fromisoformat(li.get_attribute("data-instant").replace("Z", "+00:00"))
        for li in d.finds("#preview li")
    ]


# --- the steps, in order; each needs the ones before it.


def served_without_token(d):
    """The page's files need no token and carry their policy; the API needs the token."""
    for path, content_type in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ]:
        with urllib.request.urlopen(d.base + path, timeout=10) as r:
            assert r.status == 200, path
            assert r.headers["Content-Type"] == content_type, (path, r.headers["Content-Type"])
            assert r.headers["Content-Security-Policy"] == CSP, r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "no-referrer"
            name = "index.html" if path == "/ui" else path.rsplit("/", 1)[1]
            with open(os.path.join(UI_DIR, name), "rb") as f:
                assert r.read() == f.read(), f"{path} is not ui/{name}: is the binary older?"
    try:
        urllib.request.urlopen(d.base + "/jobs", timeout=10)
        raise AssertionError("/jobs answered without the token")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code


def demo_jobs(d):
    """Jobs for the dashboard's picture, made first so they gather executions meanwhile."""
    auth = {"Authorization": "Bearer " + d.token}
    dummy = d.base + "/dummy"
    d.demo = [
        d.create_job(name="Heartbeat", schedule="*/2 * * * * *", api=dummy, headers=auth),
        d.create_job(
            name="Partner webhook",
            schedule="*/3 * * * * *",
            api=dummy,
            headers={"Authorization": "Bearer expired-key-0000"},
            retry={"maxAttempts": 1},
        ),
        d.create_job(name="Health probe", schedule="*/5 * * * * *", api=d.base + "/health", method="GET"),
        d.create_job(
            name="Nightly report",
            schedule="0 30 2 * * *",
            timezone="Europe/Paris",
            api=dummy,
            headers=auth,
        ),
        d.create_job(
            name="Invoice sync",
            schedule="0 0 */6 * * MON-FRI",
            timezone="America/New_York",
            api=dummy,
            headers=auth,
            body='{"source": "cronhook"}',
        ),
        d.create_job(name="Weekly cleanup", schedule="0 0 4 * * SUN", api=dummy, headers=auth, enabled=False),
    ]
    for job in [d.demo[3], d.demo[3], d.demo[4]]:
        status, _ = d.call("POST", f"/jobs/{job}/trigger")
        assert status == 202, status


def demo_key_fixed(d):
    """The partner webhook gets a working key: its marks go from red to green."""
    status, body = d.call(
        "PATCH", f"/jobs/{d.demo[1]}", {"headers": {"Authorization": "Bearer " + d.token}}
    )
    assert status == 200, (status, body)


def token_form(d):
    """Without a token the page asks for one; a wrong one is refused, the right one kept."""
    d.load("#/")
    d.wait("the token form", lambda: d.visible("#token-view"))
    d.shot("token-form")
    d.type_into("#token-input", "wrong-token-0123456789")
    d.click("the token button", "#token-submit")
    d.wait("the refusal", lambda: "refused" in d.text("#token-error"))
    d.type_into("#token-input", d.token)
    d.click("the token button", "#token-submit")
    d.wait("the jobs list", lambda: d.visible("#jobs-table"))
    assert d.js("return sessionStorage.getItem('cronhook.token')") == d.token
    assert d.token not in d.driver.current_url
    d.wait("the demo jobs", lambda: len(d.finds("tr.job-row")) == len(d.demo))
    d.wait(
        "the status strip",
        lambda: d.text("#stat-health .stat-text") in ("healthy", "degraded"),
    )
    # Whether or not /metrics exists, the strip shows a value or a dash.
    lag = d.text("#stat-lag .stat-text")
    assert lag == "–" or lag[:1] in "≤>", lag
    d.shot("jobs")


def create_through_the_form(d):
    """The form previews the next fires, shows the API's refusals, and creates the job."""
    d.click("New job", "#nav-new")
    d.wait("the form", lambda: d.visible("#job-form"))
    d.type_into("#f-name", "ping dummy")
    d.type_into("#f-schedule", "61 * * * * *")
    d.wait("the API's schedule error", lambda: "61" in d.text("#err-schedule"))
    d.type_into("#f-schedule", "*/2 * * * * *")
    d.wait("5 instants in the preview", lambda: len(d.finds("#preview li")) == 5)
    d.wait("the schedule error to clear", lambda: not d.visible("#err-schedule"))
    got = instants(d)
    gaps = [(b - a).total_seconds() for a, b in zip(got, got[1:])]
    assert gaps == [2.0] * 4, gaps
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in got), got
    d.wait("the schedule in words", lambda: d.text("#preview-note") == "every 2 seconds")
    d.type_into("#f-timezone", "Mars/Olympus_Mons")
    d.wait("the API's zone error", lambda: "Mars/Olympus_Mons" in d.text("#err-timezone"))
    d.type_into("#f-timezone", "")
    d.wait("the zone error to clear", lambda: not d.visible("#err-timezone"))
    d.type_into("#f-api", "ftp://example.com/x")
    d.wait("the URL error", lambda: "http" in d.text("#err-api"))
    d.type_into("#f-api", d.base + "/dummy")
    assert Select(d.find("#f-method")).first_selected_option.get_attribute("value") == "POST"
    d.click("Add header", "#add-header")
    d.type_into(".header-row .header-name", "Authorization")
    d.type_into(".header-row .header-value", "Bearer " + d.token)
    d.wait("the form to be valid", lambda: not d.finds("#job-form .field-error:not([hidden])"))
    d.shot("form")
    d.click("Create job", "#save")
    page = d.wait("the job's page", lambda: JOB_PAGE.search(d.driver.current_url))
    d.job = page.group(1)
    status, job = d.call("GET", f"/jobs/{d.job}")
    assert status == 200, status
    assert job["name"] == "ping dummy" and job["schedule"] == "*/2 * * * * *", job
    assert job["method"] == "POST" and job["api"] == d.base + "/dummy", job
    assert list(job["headers"]) == ["Authorization"], job


def it_fires(d):
    """The new job fires every 2 s and its marks turn green."""
    d.click("Jobs", "#nav-jobs")
    row = d.row(d.job)
    d.wait("the job's row", lambda: d.visible(row))
    d.wait("2 green marks", lambda: len(d.finds(f"{row} .mark.ok")) >= 2, timeout=25)
    assert not d.finds(f"{row} .mark.fail"), "a call of the job failed"
    assert d.text(f"{row} .cell-next") not in ("", "–"), "no next run shown"
    assert d.text(f"{row} .description") == "every 2 seconds", d.text(row)
    d.shot("fired")


def pause_and_resume(d):
    """Pause and Resume change the job's state, in the page and in the API."""
    row = d.row(d.job)
    d.click("Pause", f"{row} .act-pause")
    d.wait("paused", lambda: d.text(f"{row} .badge") == "paused")
    d.wait("the Resume button", lambda: d.visible(f"{row} .act-resume"))
    assert d.call("GET", f"/jobs/{d.job}")[1]["state"] == "paused"
    d.shot("paused")
    d.click("Resume", f"{row} .act-resume")
    d.wait("active", lambda: d.text(f"{row} .badge") == "active")
    assert d.call("GET", f"/jobs/{d.job}")[1]["state"] == "active"


def execution_details(d):
    """The job's page charts its executions and shows one's details when clicked."""
    d.click("the job's name", f"{d.row(d.job)} .job-name")
    d.wait("the job's title", lambda: d.text("#job-title") == "ping dummy")
    settings = d.text("#job-settings")
    for expected in ["*/2 * * * * *", "POST", d.base + "/dummy", "Authorization", "UTC"]:
        assert expected in settings, (expected, settings)
    d.wait("executions in the history", lambda: d.visible("#history-body tr.exec-row"))
    d.wait("points in the chart", lambda: len(d.finds("#job-chart circle.point.ok")) >= 2)
    assert d.finds("#job-chart .lag polyline, #job-chart .lag circle"), "no lag drawn"
    d.click("an execution", "#history-body tr.exec-row")
    panel = "#history-body tr.exec-detail"
    d.wait("the execution's details", lambda: "succeeded" in d.text(panel))
    text = d.text(panel)
    for expected in ["Scheduled at", "Lag", "HTTP status", "200", "schedule"]:
        assert expected in text, (expected, text)
    d.shot("execution")


def delete_with_confirmation(d):
    """Delete asks first in the page's dialog; Cancel keeps the job, Delete removes it."""
    d.click("Jobs", "#nav-jobs")
    row = d.row(d.job)
    d.click("Delete", f"{row} .act-delete")
    d.wait("the dialog", lambda: d.js("return document.getElementById('confirm-dialog').open"))
    assert "ping dummy" in d.text("#confirm-message")
    d.shot("confirm-delete")
    d.click("Cancel", "#confirm-cancel")
    d.wait("the dialog to close", lambda: not d.js("return document.getElementById('confirm-dialog').open"))
    assert d.visible(row) and d.call("GET", f"/jobs/{d.job}")[0] == 200
    d.click("Delete", f"{row} .act-delete")
    d.wait("the dialog", lambda: d.js("return document.getElementById('confirm-dialog').open"))
    d.click("the confirmation", "#confirm-ok")
    d.wait("the row to go", lambda: not d.finds(row))
    assert d.call("GET", f"/jobs/{d.job}")[0] == 404


def edit_and_refusal(d):
    """The edit form changes a job and keeps its hidden header values; a refused save
    shows the API's error message."""
    job = d.create_job(
        name="to edit", schedule="0 0 0 1 1 *", api=d.base + "/dummy", headers={"X-Key": "secret-1"}
    )
    d.go(f"#/jobs/{job}/edit")
    d.wait("the edit form", lambda: d.find("#f-schedule").get_attribute("value") == "0 0 0 1 1 *")
    assert d.find(".header-row .header-name").get_attribute("value") == "X-Key"
    assert d.find(".header-row .header-value").get_attribute("value") == ""
    d.type_into("#f-name", "edited")
    d.type_into("#f-schedule", "0 0 12 * * MON")
    d.wait("the new preview", lambda: len(d.finds("#preview li")) == 5 and all(
        t.hour == 12 and t.weekday() == 0 for t in instants(d)))
    d.click("Save", "#save")
    d.wait("the job's page", lambda: d.text("#job-title") == "edited")
    status, saved = d.call("GET", f"/jobs/{job}")
    assert saved["schedule"] == "0 0 12 * * MON" and list(saved["headers"]) == ["X-Key"], saved
    assert saved["version"] == 2, saved

    d.go(f"#/jobs/{job}/edit")
    d.wait("the edit form", lambda: d.find("#f-name").get_attribute("value") == "edited")
    assert d.call("DELETE", f"/jobs/{job}")[0] == 204
    d.type_into("#f-name", "renamed")
    d.click("Save", "#save")
    d.wait("the API's error", lambda: f"no job {job}" in d.text("#form-error"))
    assert "404" in d.text("#form-error")
    d.shot("refused")


def names_are_text(d):
    """A job named like HTML shows as that text, and nothing of it runs."""
    xss = d.create_job(
        name=XSS_NAME,
        schedule="0 0 0 1 1 *",
        api=d.base + "/dummy?q=<b>x</b>",
        headers={"X-Note": XSS_BODY},
        body=XSS_BODY,
    )
    d.load("#/")
    link = f"{d.row(xss)} .job-name"
    d.wait("the job's row", lambda: d.visible(link))
    assert d.find(link).text == XSS_NAME, d.find(link).text
    d.shot("html-name")
    d.click("the job's name", link)
    d.wait("the job's title", lambda: d.text("#job-title") == XSS_NAME)
    settings = d.text("#job-settings")
    assert XSS_BODY in settings and "X-Note" in settings, settings
    assert d.js("return document.querySelectorAll('script').length") == 1
    imgs = d.js("return [...document.images].map((i) => i.getAttribute('src'))")
    assert "x" not in imgs, imgs
    assert d.js("return document.querySelectorAll('[onerror]').length") == 0
    d.collect()
    assert not d.alerts, d.alerts
    try:
        d.driver.switch_to.alert
        raise AssertionError("an alert is open")
    except NoAlertPresentException:
        pass
    assert d.call("DELETE", f"/jobs/{xss}")[0] == 204


def phone_layout(d):
    """On a phone the list becomes cards and nothing overflows sideways."""
    d.size(PHONE, mobile=True)
    try:
        d.load("#/")
        d.wait("the cards", lambda: len(d.finds("tr.job-row")) == len(d.demo))
        assert d.js("return getComputedStyle(document.querySelector('#jobs-table thead')).display") == "none"
        d.wait("marks", lambda: d.finds("tr.job-row .mark"))
        overflow = d.js("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow} px wider than the screen"
        d.shot("phone-jobs")
        d.go(f"#/jobs/{d.demo[0]}")
        d.wait("the history", lambda: d.visible("#history-body tr.exec-row"))
        overflow = d.js("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow} px wider than the screen"
        d.shot("phone-job")
    finally:
        d.size(DESKTOP)


def forget_token(d):
    """Forget token drops it from the tab and asks for it again."""
    d.click("Forget token", "#forget-token")
    d.wait("the token form", lambda: d.visible("#token-view"))
    assert d.js("return sessionStorage.getItem('cronhook.token')") is None
    assert not d.visible("#forget-token")
    d.type_into("#token-input", d.token)
    d.click("the token button", "#token-submit")
    d.wait("the same page again", lambda: d.text("#job-title") == "Heartbeat")


def filters(d):
    """The list filters by name in the page and by state through the API."""
    d.go("#/")
    d.wait("the demo jobs", lambda: len(d.finds("tr.job-row")) == len(d.demo))
    d.type_into("#filter-name", "HEART")
    d.wait("one job by name", lambda: [e.text for e in d.finds("tr.job-row .job-name")] == ["Heartbeat"])
    assert d.text("#jobs-count").startswith("1 of 6 jobs"), d.text("#jobs-count")
    d.type_into("#filter-name", "")
    Select(d.find("#filter-state")).select_by_value("paused")
    d.wait("the paused job", lambda: [e.text for e in d.finds("tr.job-row .job-name")] == ["Weekly cleanup"])
    d.shot("filtered")
    Select(d.find("#filter-state")).select_by_value("")
    d.wait("every job", lambda: len(d.finds("tr.job-row")) == len(d.demo))


def docs_picture(d):
    """The dashboard at desktop size, with the demo jobs and their marks, for the docs."""
    d.size(DOCS)
    d.load("#/")
    rows = [d.row(j) for j in d.demo]
    d.wait("the demo jobs", lambda: all(d.visible(r) for r in rows))
    d.wait("green marks", lambda: len(d.finds(f"{rows[0]} .mark.ok")) >= 8, timeout=20)
    d.wait("red then green marks", lambda: d.finds(f"{rows[1]} .mark.ok") and d.finds(f"{rows[1]} .mark.fail"), timeout=20)
    d.wait("the status strip", lambda: d.text("#stat-health .stat-text") == "healthy")
    time.sleep(0.5)
    d.shot("dashboard")
    if d.docs_shot:
        d.driver.save_screenshot(d.docs_shot)
    d.size(DESKTOP)


def paging(d):
    """The list loads its next page through the cursor; a job's history pages too."""
    many = d.create_job(
        name="many calls",
        schedule="0 0 0 1 1 *",
        api=d.base + "/dummy",
        headers={"Authorization": "Bearer " + d.token},
        retry={"maxAttempts": 1},
    )
    for _ in range(23):
        assert d.call("POST", f"/jobs/{many}/trigger")[0] == 202
    for i in range(50):
        d.create_job(name=f"batch {i:02d}", schedule="0 0 0 1 1 *", api=d.base + "/dummy", enabled=False)
    total = len(d.demo) + 51
    d.load("#/")
    d.wait("the first page", lambda: len(d.finds("tr.job-row")) == 50)
    assert "more on the server" in d.text("#jobs-count"), d.text("#jobs-count")
    d.click("Load more", "#load-more")
    d.wait("the second page", lambda: len(d.finds("tr.job-row")) == total)
    assert not d.visible("#load-more")
    d.wait(
        "the 23 calls",
        lambda: len(d.call("GET", f"/jobs/{many}/executions?limit=100")[1]) == 23,
        timeout=20,
    )
    d.go(f"#/jobs/{many}")
    d.wait("a full first page", lambda: len(d.finds("#history-body tr.exec-row")) == 20)
    first = d.find("#history-body tr.exec-row").get_attribute("data-execution-id")
    d.click("Older", "#history-older")
    d.wait("the second page", lambda: len(d.finds("#history-body tr.exec-row")) == 3)
    assert d.text("#history-page") == "page 2"
    assert first not in [r.get_attribute("data-execution-id") for r in d.finds("#history-body tr.exec-row")]
    assert not d.finds("#history-body .mark.fail"), "a call failed"
    d.js("document.getElementById('history-table').scrollIntoView()")
    d.shot("history-page-2")
    d.click("Newer", "#history-newer")
    d.wait("the first page again", lambda: len(d.finds("#history-body tr.exec-row")) == 20)


def same_origin_and_no_violation(d):
    """Every request went to the server itself, none carried the token in its URL, and the
    console holds no CSP violation and no token."""
    d.collect()
    assert d.requests, "no request was logged"
    for url in d.requests:
        parts = urlsplit(url)
        if parts.scheme == "data":
            continue
        assert f"{parts.scheme}://{parts.netloc}" == d.origin, f"request to another origin: {url}"
        assert d.token not in url, "the token is in a URL"
    assert not d.csp, d.csp
    for entry in d.console:
        message = entry.get("message", "")
        assert "Content Security Policy" not in message and "Refused to" not in message, message
        assert d.token not in message, "the token is in the console"
    assert not d.alerts, d.alerts


STEPS = [
    served_without_token,
    demo_jobs,
    token_form,
    create_through_the_form,
    it_fires,
    pause_and_resume,
    demo_key_fixed,
    execution_details,
    delete_with_confirmation,
    edit_and_refusal,
    names_are_text,
    phone_layout,
    forget_token,
    filters,
    docs_picture,
    paging,
    same_origin_and_no_violation,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--screenshots", default="target/ui-screenshots")
    parser.add_argument("--docs-shot", default="", help="where to save the docs picture")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    if args.docs_shot:
        os.makedirs(os.path.dirname(args.docs_shot) or ".", exist_ok=True)
    for old in os.listdir(args.screenshots):
        if old.endswith(".png"):
            os.remove(os.path.join(args.screenshots, old))

    # A timeout's SIGTERM ends the run through `finally`, which closes the browser.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    passed = failed = 0
    started = time.monotonic()
    d = Dashboard(args.base, args.token, args.screenshots, args.docs_shot)
    try:
        for step in STEPS:
            t0 = time.monotonic()
            try:
                step(d)
            except Exception:
                failed += 1
                print(f"FAIL {step.__name__}")
                traceback.print_exc()
                try:
                    d.shot(f"FAILED-{step.__name__}")
                    d.collect()
                    for entry in d.console[-20:]:
                        print("  console:", entry.get("level"), entry.get("message"))
                except WebDriverException:
                    pass
                break
            passed += 1
            print(f"ok   {step.__name__} ({time.monotonic() - t0:.1f} s)")
    finally:
        d.quit()
    print(f"took {time.monotonic() - started:.1f} s; screenshots in {args.screenshots}")
    print(f"ui-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
