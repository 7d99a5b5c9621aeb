"""A real browser (Debian's chromium, headless) against a real server: the dashboard, a task page
and the agents page load with no console errors or uncaught exceptions, and their screenshots are
kept under test-artifacts/ for review. Driven over the DevTools protocol with a tiny client."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless chromium with one page, spoken to over the DevTools websocket."""

    def __init__(self, binary: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="swarmlens-chromium-")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "DevTools listening on" in line:
                url = line.split("DevTools listening on", 1)[1].strip()
                break
            if not line and self.proc.poll() is not None:
                break
        if not url:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained
        self.ws = websocket.create_connection(url, timeout=30)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, **params):
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        self.ws.settimeout(timeout)
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("method") == method:
                return reply
            self.events.append(reply)
        raise TimeoutError(method)

    def goto(self, url: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)["result"].get("value")

    def submit_and_wait(self, expression: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.evaluate(expression)
        self.wait_event("Page.loadEventFired")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        self.call("Runtime.evaluate", session=True, expression="1")  # flush pending events
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("Uncaught: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + json.dumps(p.get("args", []))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def screenshot(self, path: Path, width: int = 1280, mobile: bool = False) -> None:
        """The whole page at ``width`` (a phone's layout with ``mobile``); the window's own size after."""
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or 900
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=min(int(height), 6000),
                  deviceScaleFactor=1, mobile=mobile)
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        self.call("Emulation.clearDeviceMetricsOverride", session=True)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)

    def click(self, x: float, y: float) -> None:
        """A real left click at (x, y) of the viewport, as a finger or a mouse gives it."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def key(self, key: str, code: str, keycode: int, text: str = "") -> None:
        self.call("Input.dispatchKeyEvent", session=True, type="keyDown", key=key, code=code,
                  windowsVirtualKeyCode=keycode, **({"text": text} if text else {}))
        self.call("Input.dispatchKeyEvent", session=True, type="keyUp", key=key, code=code, windowsVirtualKeyCode=keycode)

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(app):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    binary = _chromium()
    if not binary:
        pytest.skip("chromium is not installed (scripts/test.sh installs it with apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client (test extra) drives chromium")
    b = Browser(binary)
    yield b
    b.close()


def test_pages_load_without_console_errors_and_are_saved_as_screenshots(server, browser, seeded, h):
    ARTIFACTS.mkdir(exist_ok=True)
    browser.goto(f"{server}/")
    assert browser.evaluate("location.pathname") == "/login"
    browser.submit_and_wait(
        f"document.querySelector('input[name=login]').value = {json.dumps(h.OPS_LOGIN)};"
        f"document.querySelector('input[name=password]').value = {json.dumps(h.OPS_PASSWORD)};"
        "document.querySelector('input[name=login]').form.submit()")
    assert browser.evaluate("location.pathname") == "/"
    assert browser.evaluate("document.querySelector('h1').textContent") == "Dashboard"
    assert browser.evaluate("document.querySelectorAll('svg rect').length") > 10  # the trend chart drew
    browser.screenshot(ARTIFACTS / "dashboard.png")

    task = seeded.task_ids["xss"]
    browser.goto(f"{server}/tasks/{task}")
    assert browser.evaluate("document.title").startswith("Task ")
    # The payload is text on the page, not markup: no injected element, no alert.
    assert browser.evaluate("document.querySelectorAll('main img[src=x]').length") == 0
    assert "<script>" in browser.evaluate("document.querySelector('pre.content').textContent")
    browser.screenshot(ARTIFACTS / "task-xss.png")

    browser.goto(f"{server}/tasks/{seeded.task_ids['handoff']}")
    assert browser.evaluate("document.querySelectorAll('.path .agent').length") == 3
    browser.screenshot(ARTIFACTS / "task.png")

    for name, path in (("agents", "/agents"), ("user", "/users/alice"), ("report", "/reports/monthly")):
        browser.goto(f"{server}{path}")
        browser.screenshot(ARTIFACTS / f"{name}.png")

    assert browser.problems() == []
    for name in ("dashboard", "task", "task-xss", "agents", "user", "report"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def _signed_in(server, browser, h) -> None:
    browser.goto(f"{server}/")
    if browser.evaluate("location.pathname") == "/login":
        browser.submit_and_wait(
            f"document.querySelector('input[name=login]').value = {json.dumps(h.OPS_LOGIN)};"
            f"document.querySelector('input[name=password]').value = {json.dumps(h.OPS_PASSWORD)};"
            "document.querySelector('input[name=login]').form.submit()")


def test_filters_date_range_empty_state_and_chart_table_in_a_browser(server, browser, seeded, h):
    ARTIFACTS.mkdir(exist_ok=True)
    _signed_in(server, browser, h)
    start, end = seeded.today - timedelta(days=13), seeded.today
    # The filter form, as a user fills it: a date range and an agent; the view lands in the URL.
    browser.submit_and_wait(
        f"document.querySelector('form[aria-label=Filters] input[name=from]').value = '{start}';"
        f"document.querySelector('form[aria-label=Filters] input[name=to]').value = '{end}';"
        "document.querySelector('form[aria-label=Filters] select[name=agent]').value = 'Billing Agent';"
        "document.querySelector('form[aria-label=Filters]').submit()")
    query = browser.evaluate("location.search")
    assert f"from={start}" in query and f"to={end}" in query and "agent=Billing+Agent" in query
    labels = browser.evaluate("[...document.querySelectorAll('.figure .label')].map(e => e.textContent)")
    assert labels[0] == "Agent runs"
    assert browser.evaluate("document.querySelector('select[name=agent]').value") == "Billing Agent"
    # The chart's figures behind it: a keyboard opens the data table (Tab to the summary, Enter).
    browser.evaluate("document.querySelector('details.chart-data summary').focus()")
    browser.call("Input.dispatchKeyEvent", session=True, type="keyDown", key="Enter", code="Enter",
                 windowsVirtualKeyCode=13, text="\r")
    browser.call("Input.dispatchKeyEvent", session=True, type="keyUp", key="Enter", code="Enter",
                 windowsVirtualKeyCode=13)
    assert browser.evaluate("document.querySelector('details.chart-data').open") is True
    rows = browser.evaluate("document.querySelectorAll('details.chart-data tbody tr').length")
    assert rows == 14  # one per day of the range, none after today
    browser.screenshot(ARTIFACTS / "dashboard-filtered.png")

    # Nothing matches: an empty state, not a flat chart.
    browser.goto(f"{server}/?period=30d&user=carol&agent=Billing+Agent")
    assert "No agent runs match these filters" in browser.evaluate("document.querySelector('figure.chart').textContent")
    assert browser.evaluate("document.querySelectorAll('figure.chart svg').length") == 0
    browser.screenshot(ARTIFACTS / "dashboard-empty.png")

    # Search by the start of a word: a count, and the words marked.
    browser.goto(f"{server}/search?q=refun&from={seeded.today - timedelta(days=70)}")
    assert browser.evaluate("document.querySelector('.result-count strong').textContent") != "0"
    marks = browser.evaluate("[...document.querySelectorAll('table.tasks mark')].map(m => m.textContent.toLowerCase())")
    assert marks and set(marks) <= {"refund", "refunds", "refunded"}
    browser.screenshot(ARTIFACTS / "search.png")

    browser.goto(f"{server}/agents?period=30d&model=o3-mini")
    assert browser.evaluate("document.querySelectorAll('main table tbody tr').length") >= 1
    browser.screenshot(ARTIFACTS / "agents-filtered.png")
    browser.goto(f"{server}/docs/api")
    assert browser.evaluate("document.querySelectorAll('section.api-op').length") >= 8
    browser.screenshot(ARTIFACTS / "api-docs.png")
    assert browser.problems() == []


# ---------------------------------------------------------------------------------------------
# Phones: every page at 390 x 844 fits the screen, and its menu opens and works.

PHONE_WIDTH, PHONE_HEIGHT = 390, 844
SKIPPED_ENDPOINTS = {"static", "auth.login", "auth.logout", "health.healthz", "health.readyz"}

# Elements that stick out of the viewport and are not inside a box that scrolls: what made the page
# wider than the screen, named in the failure message.
OVERFLOWING = """(() => {
  const w = document.documentElement.clientWidth, out = [];
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > w + 1 && !scrolls(el))
      out.push(el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined ? '.' + el.className : '') + ' ' + Math.round(r.right));
  }
  return out.slice(0, 8);
})()"""

# For each link of the main menu: whether it is shown, inside the screen, and the element a tap on
# its centre reaches is the link itself (nothing drawn over it).
NAV_LINKS = """[...document.querySelectorAll('#main-nav a')].map(a => {
  const r = a.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  return {text: a.textContent.trim(), href: a.getAttribute('href'), x, y,
          visible: r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight,
          reachable: !!hit && (hit === a || a.contains(hit))};
})"""


def _phone_pages(app, seeded) -> dict[str, str]:
    """Every HTML page of the app an ops user opens: each GET route without arguments from the
    url_map (not the API, downloads or health checks), plus a user's, tasks', a custom report's,
    a search's and filtered pages. A new page is in the test without anyone adding it."""
    pages = {}
    for rule in app.url_map.iter_rules():
        if (rule.endpoint in SKIPPED_ENDPOINTS or rule.arguments or "GET" not in rule.methods
                or rule.rule.startswith("/api/") or rule.rule.endswith((".csv", ".pdf", ".json"))):
            continue
        pages[rule.endpoint.replace(".", "-")] = rule.rule
    start = seeded.today - timedelta(days=20)
    pages.update({
        "user-alice": "/users/alice",
        "user-bob": "/users/bob",
        "task-handoff": f"/tasks/{seeded.task_ids['handoff']}",
        "task-json": f"/tasks/{seeded.task_ids['json']}",
        "task-xss": f"/tasks/{seeded.task_ids['xss']}",
        "report-weekly": "/reports/weekly",
        "report-custom": f"/reports/custom?from={start}&to={seeded.today}",
        "search-refund": f"/search?q=refund&from={seeded.today - timedelta(days=60)}",
        "feedback-down": "/feedback?vote=down",
        "agents-filtered": "/agents?period=30d&model=gpt-4o",
        "dashboard-range": f"/?from={start}&to={seeded.today}&agent=Triage+Agent",
    })
    return pages


def test_every_page_fits_a_phone_and_its_menu_works(app, server, browser, seeded, h, ops):
    ARTIFACTS.mkdir(exist_ok=True)
    pages = _phone_pages(app, seeded)
    # Every page of the list answers (a redirect is followed by the browser), so the sizes below are
    # of the pages themselves, not of an error page.
    for name, path in pages.items():
        status = ops.get(path).status_code
        assert status in (200, 302), f"{name} {path} answered {status}"
    assert {"dashboard-dashboard", "users-users_list", "search-search", "admin-quotas", "admin-prices",
            "admin-tokens", "admin-plans", "feedback-feedback_list", "reports-monthly", "agents-agents",
            "docs-api_reference"} <= set(pages)

    _signed_in(server, browser, h)
    wide, charts = {}, 0
    try:
        for name, path in pages.items():
            browser.viewport(PHONE_WIDTH, PHONE_HEIGHT, mobile=True)
            browser.goto(f"{server}{path}")
            assert browser.evaluate("location.pathname") != "/login", f"{path}: signed out"
            assert browser.evaluate("screen.width") == PHONE_WIDTH
            width = browser.evaluate("document.documentElement.scrollWidth")
            if width > PHONE_WIDTH:
                wide[path] = (width, browser.evaluate(OVERFLOWING))
            # The menu is folded; the page's title is not covered by anything.
            assert browser.evaluate("getComputedStyle(document.getElementById('main-nav')).display") == "none", path
            assert browser.evaluate(
                "(() => { const h = document.querySelector('main h1'); const r = h.getBoundingClientRect();"
                " const e = document.elementFromPoint(r.left + 4, r.top + r.height / 2); return h.contains(e); })()"), path
            # A tap on "Menu" opens it: every link is shown inside the screen and reachable.
            button = browser.evaluate("(() => { const r = document.querySelector('label.nav-button')"
                                      ".getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2,"
                                      " r.right]; })()")
            assert button[2] <= PHONE_WIDTH, f"{path}: the Menu button is off the screen"
            browser.click(button[0], button[1])
            links = browser.evaluate(NAV_LINKS)
            assert [link["text"] for link in links] == ["Dashboard", "Users", "Search", "Reports", "Agents",
                                                        "Feedback", "Admin", "API"], path
            assert all(link["visible"] and link["reachable"] for link in links), (path, links)
            # Wide charts keep a width their labels can be read at, scrolling inside their box.
            assert browser.evaluate("[...document.querySelectorAll('.chart-scroll svg')].every(s =>"
                                    " s.getBoundingClientRect().width >= 720 && s.parentElement.clientWidth <= innerWidth)"), path
            charts += browser.evaluate("document.querySelectorAll('.chart-scroll svg').length")
            browser.screenshot(ARTIFACTS / f"phone-{name}.png", width=PHONE_WIDTH, mobile=True)
        assert wide == {}, f"pages wider than a {PHONE_WIDTH} px screen: {wide}"
        assert charts >= 8  # dashboards, reports, users' and tasks' pages drew theirs

        # A tap on a menu link goes there.
        browser.viewport(PHONE_WIDTH, PHONE_HEIGHT, mobile=True)
        browser.goto(f"{server}/")
        button = browser.evaluate("(() => { const r = document.querySelector('label.nav-button').getBoundingClientRect();"
                                  " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        browser.click(*button)
        search = next(link for link in browser.evaluate(NAV_LINKS) if link["text"] == "Search")
        browser.events = [e for e in browser.events if e.get("method") != "Page.loadEventFired"]
        browser.click(search["x"], search["y"])
        browser.wait_event("Page.loadEventFired")
        assert browser.evaluate("location.pathname") == "/search"

        # From the keyboard: Tab reaches the menu's toggle, Space opens it, Space closes it.
        browser.evaluate("document.activeElement && document.activeElement.blur()")
        browser.key("Tab", "Tab", 9)
        browser.key("Tab", "Tab", 9)
        assert browser.evaluate("document.activeElement.id") == "nav-toggle"
        browser.key(" ", "Space", 32, " ")
        assert browser.evaluate("getComputedStyle(document.getElementById('main-nav')).display") == "flex"
        assert all(link["visible"] for link in browser.evaluate(NAV_LINKS))
        browser.key(" ", "Space", 32, " ")
        assert browser.evaluate("getComputedStyle(document.getElementById('main-nav')).display") == "none"
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)

    # At a desktop's width the whole menu is shown in the header, with no Menu button.
    browser.viewport(1280, 900)
    browser.goto(f"{server}/")
    assert browser.evaluate("getComputedStyle(document.querySelector('label.nav-button')).display") == "none"
    header_bottom = browser.evaluate("document.querySelector('header.top').getBoundingClientRect().bottom")
    links = browser.evaluate(NAV_LINKS)
    assert len(links) == 8 and all(link["visible"] and link["reachable"] for link in links), links
    assert all(link["y"] < header_bottom for link in links)
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1280
    # A tablet and a small laptop: either the whole menu fits the header or it folds; never wider.
    for width in (768, 1024):
        browser.viewport(width, 900)
        for path in ("/", "/admin/quotas", "/search"):
            browser.goto(f"{server}{path}")
            assert browser.evaluate("document.documentElement.scrollWidth") <= width, (width, path)
            assert all(link["reachable"] for link in browser.evaluate(NAV_LINKS)), (width, path)
    browser.call("Emulation.clearDeviceMetricsOverride", session=True)
    assert browser.problems() == []
    assert (ARTIFACTS / "phone-dashboard-dashboard.png").stat().st_size > 5_000


def test_an_invalid_filter_is_shown_beside_its_field_on_a_phone(server, browser, seeded, h):
    ARTIFACTS.mkdir(exist_ok=True)
    _signed_in(server, browser, h)
    try:
        for name, path, field in (("search", "/search?q=kettle&from=2026-03-10&to=2026-03-01", "to"),
                                  ("feedback", "/feedback?vote=sideways&agent=Billing+Agent", "vote")):
            browser.viewport(PHONE_WIDTH, PHONE_HEIGHT, mobile=True)
            browser.goto(f"{server}{path}")
            assert browser.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH, path
            message = browser.evaluate(
                f"(() => {{ const e = document.getElementById('error-{field}'); const r = e.getBoundingClientRect();"
                " return {text: e.textContent, shown: r.width > 0 && r.right <= innerWidth,"
                f" beside: e.closest('label').contains(document.querySelector('[name={field}]'))}}; }})()")
            assert message["shown"] and message["beside"] and message["text"], (path, message)
            assert browser.evaluate(f"document.querySelector('[name={field}]').getAttribute('aria-invalid')") == "true"
            browser.screenshot(ARTIFACTS / f"phone-invalid-{name}.png", width=PHONE_WIDTH, mobile=True)
        # What was typed is still in the form.
        assert browser.evaluate("document.querySelector('select[name=agent]').value") == "Billing Agent"
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)
    # The browser logs the pages' own 400 status; nothing else went wrong.
    assert [p for p in browser.problems() if "status of 400" not in p] == []


def test_the_mails_html_part_renders_escaped_and_fits_a_phone(browser, tmp_path):
    """Each audience's alert mail, its HTML part opened in the browser at 390 px and at desktop
    width: the heading and figures show, nothing a user id carries becomes markup, nothing is wider
    than the screen. Screenshots under test-artifacts/."""
    from datetime import datetime, timezone

    from swarmlens.notify.alerts import alert_message
    from swarmlens.reports import common as rc

    hostile = '<img src=x onerror="document.title=1">eve'
    row = {"level": "over", "plan": "free", "plan_name": "Free <b>plan</b>", "tokens": 24_250, "quota": 20_000,
           "warn_at_percent": 80, "user_id": hostile, "email": "eve@example.com"}
    message = alert_message({"SWARMLENS_PUBLIC_URL": "https://swarmlens.example.com"}, row,
                            rc.month_period("2026-11"), datetime(2026, 11, 20, tzinfo=timezone.utc))
    ARTIFACTS.mkdir(exist_ok=True)
    browser.problems()  # the page is shared with earlier tests: judge only what these mails cause
    browser.events.clear()
    for audience, m in (("ops", message), ("user", message.for_user)):
        path = tmp_path / f"mail-{audience}.html"
        path.write_text(m.html, encoding="utf-8")
        browser.viewport(390, 844, mobile=True)
        browser.goto(path.as_uri())
        assert browser.evaluate("document.images.length") == 0  # the user id's <img> stayed text
        assert browser.evaluate("document.title") == m.subject
        text = browser.evaluate("document.body.innerText")
        assert "24,250" in text and "20,000" in text and "121.2%" in text and "Free <b>plan</b>" in text
        assert ("over the monthly quota" in text) if audience == "ops" else ("You are over your monthly quota" in text)
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        browser.screenshot(ARTIFACTS / f"mail-{audience}-phone.png", width=390, mobile=True)
        browser.screenshot(ARTIFACTS / f"mail-{audience}-desktop.png", width=1280)
        assert browser.problems() == []
