"""The reporter under hostile input and a failing database: 503 instead of hanging, health
endpoints, query limits, sessions that end server-side, sign-in rate limits, security headers,
deep JSON, out-of-range dates, RFC 3339 times, CSV formulas and cross-user menus."""

from __future__ import annotations

import csv
import io
import re
import socket
import time
from datetime import datetime, timedelta

import pytest

from swarmlens_testing.polling import wait_until

HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def _app(seeded, tmp_path, **overrides):
    from swarmlens.app import create_app

    cfg = {k: v for k, v in seeded.config.items() if k.startswith("SWARMLENS_")}
    cfg.update({"SWARMLENS_DATA_DIR": str(tmp_path), **overrides})
    return create_app({**cfg, "TESTING": True})


# ---------------------------------------------------------------------------------------------
# ClickHouse down or stalled


@pytest.fixture()
def stalled_port():
    """A port that accepts TCP connections and never answers: a stopped (SIGSTOP) server looks so."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture()
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# What "fast" means for a page without its database: well below the query timeout a hung page
# would wait for (30 s), with room for a shared, busy machine; the ping itself gives up after 1 s.
FAST = 8.0


@pytest.mark.parametrize("kind", ["stalled", "down"])
def test_data_pages_answer_503_fast_while_sign_in_page_static_and_healthz_work(
        app, seeded, h, tmp_path, request, kind):
    port = request.getfixturevalue("stalled_port" if kind == "stalled" else "closed_port")
    # A stall is a timeout that lasts: with no grace it counts at once (tests/unit/test_ping_grace.py
    # has the grace itself).
    app_down = _app(seeded, tmp_path, SWARMLENS_CLICKHOUSE_URL=f"http://127.0.0.1:{port}",
                    SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS=0)
    c = app_down.test_client()
    for path, headers in (("/api/v1/me", h.bearer(seeded.tokens["alice"])), ("/search", h.bearer(seeded.tokens["alice"])),
                          ("/users?format=json", h.bearer(seeded.tokens["ops"]))):
        t0 = time.monotonic()
        r = c.get(path, headers=headers)
        took = time.monotonic() - t0
        # fast: bounded by the 1 s ping, not by a query's timeout (FAST leaves a busy machine room)
        assert r.status_code == 503 and took < FAST, (path, r.status_code, took)
        assert "database is not reachable" in r.get_data(as_text=True)
        assert r.headers["Retry-After"]
    # The sign-in page, static files and /healthz need no database.
    for path in ("/login", "/static/style.css", "/healthz"):
        t0 = time.monotonic()
        assert c.get(path).status_code == 200, path
        assert time.monotonic() - t0 < FAST, path
    # Signing in needs the database: it fails fast and says why.
    t0 = time.monotonic()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"csrf_token": csrf, "mode": "ops", "login": "admin", "password": "whatever1"})
    assert r.status_code == 503 and time.monotonic() - t0 < FAST
    assert "database is not reachable" in r.get_data(as_text=True)
    r = c.get("/readyz")
    assert r.status_code == 503 and r.get_json()["clickhouse"] == "unreachable"
    # A browser signed in before the outage: data pages say 503 fast, the sign-in page still shows.
    up = app.test_client()
    assert h.login(up).status_code == 302
    down = app_down.test_client()
    down.set_cookie("swarmlens_session", up.get_cookie("swarmlens_session").value)
    t0 = time.monotonic()
    assert down.get("/users").status_code == 503 and time.monotonic() - t0 < FAST
    assert down.get("/login").status_code == 200 and down.get("/static/style.css").status_code == 200


def test_readyz_is_ready_when_migrated_and_names_pending_migrations(app, seeded, tmp_path):
    r = app.test_client().get("/readyz")
    assert r.status_code == 200 and r.get_json() == {"status": "ready", "clickhouse": "ok", "migrations": "applied"}
    empty = _app(seeded, tmp_path, SWARMLENS_DATABASE="never_migrated_" + str(int(time.time())))
    r = empty.test_client().get("/readyz")
    assert r.status_code == 503 and r.get_json()["migrations"] == "pending"
    assert "0001_otel_traces" in r.get_json()["message"] or "0002" in r.get_json()["message"]


def test_queries_run_under_time_and_memory_limits(seeded, tmp_path, h):
    from swarmlens.web.common import ClientPool

    cfg = dict(seeded.config, SWARMLENS_QUERY_TIMEOUT_SECONDS=1, SWARMLENS_QUERY_MAX_MEMORY_BYTES=20_000_000)
    pool = ClientPool(cfg)
    client = pool.acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(Exception) as err:  # clickhouse-connect's DatabaseError
            client.query("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1")
        assert time.monotonic() - t0 < 10
        assert "TIMEOUT_EXCEEDED" in str(err.value) or "159" in str(err.value)
        with pytest.raises(Exception) as err:
            client.query("SELECT groupArray(toString(number)) FROM numbers(50000000)")
        assert "MEMORY_LIMIT_EXCEEDED" in str(err.value) or "241" in str(err.value)
    finally:
        pool.release(client, broken=True)
    # Through a page: a query stopped by its limit is a 503 that says so, not a 500.
    app = _app(seeded, tmp_path, SWARMLENS_QUERY_MAX_MEMORY_BYTES=1000)
    r = app.test_client().get("/users?format=json", headers=h.bearer(seeded.tokens["ops"]))
    assert r.status_code == 503 and "more memory" in r.get_json()["error"]["message"]


# ---------------------------------------------------------------------------------------------
# Sessions end server-side


def _session_copy(app, client):
    """A second browser holding a copy of ``client``'s session cookie."""
    other = app.test_client()
    other.set_cookie("swarmlens_session", client.get_cookie("swarmlens_session").value)
    return other


def _new_ops(seeded, login):
    from swarmlens import auth

    auth.set_ops_password(seeded.client, seeded.config, login, "a long password", create=True)


def test_logout_ends_the_session_for_every_copy_of_the_cookie(app, seeded, h):
    _new_ops(seeded, "ops-logout")
    c = app.test_client()
    assert h.login(c, "ops-logout", "a long password").status_code == 302
    copy = _session_copy(app, c)
    assert copy.get("/users").status_code == 200
    assert c.post("/logout", data={"csrf_token": h.csrf_of(c, "/users")}).status_code == 302
    r = copy.get("/users")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_password_change_and_disable_end_sessions(app, seeded, h):
    from swarmlens import auth

    _new_ops(seeded, "ops-change")
    c = app.test_client()
    assert h.login(c, "ops-change", "a long password").status_code == 302
    assert c.get("/users").status_code == 200
    auth.set_ops_password(seeded.client, seeded.config, "ops-change", "another long password", create=False)
    assert c.get("/users").status_code == 302
    assert h.login(c, "ops-change", "another long password").status_code == 302
    assert c.get("/users").status_code == 200
    auth.set_ops_disabled(seeded.client, seeded.config, "ops-change", True)
    assert c.get("/users").status_code == 302


def test_revoking_an_ops_token_ends_the_browser_session_opened_with_it(app, seeded, h):
    from swarmlens import auth

    token, _ = auth.create_token(seeded.client, seeded.config, scope="ops", owner=h.OPS_LOGIN, name="browser")
    c = app.test_client()
    r = c.post("/login", data={"csrf_token": h.csrf_of(c), "mode": "token", "token": token})
    assert r.status_code == 302
    assert c.get("/users").status_code == 200
    auth.revoke_token(seeded.client, seeded.config, token)
    assert c.get("/users").status_code == 302


def test_user_logout_ends_token_sessions_but_not_the_token(app, seeded, h):
    from swarmlens import auth

    token, _ = auth.create_token(seeded.client, seeded.config, scope="user", owner="alice", name="browser")
    c = app.test_client()
    assert c.post("/login", data={"csrf_token": h.csrf_of(c), "mode": "token", "token": token}).status_code == 302
    copy = _session_copy(app, c)
    assert copy.get("/users/alice").status_code == 200
    assert c.post("/logout", data={"csrf_token": h.csrf_of(c, "/search")}).status_code == 302
    assert copy.get("/users/alice").status_code == 302
    assert app.test_client().get("/api/v1/me", headers=h.bearer(token)).status_code == 200


# ---------------------------------------------------------------------------------------------
# Sign-in rate limits


def _from(app, address):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def _try(c, login, password):
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    return c.post("/login", data={"csrf_token": csrf, "mode": "ops", "login": login, "password": password})


def test_sign_in_is_rate_limited_per_login_and_address_and_per_address(seeded, tmp_path, h):
    app = _app(seeded, tmp_path, SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT=3, SWARMLENS_LOGIN_FAILURES_PER_ADDRESS=5,
               SWARMLENS_LOGIN_WINDOW_SECONDS=600)
    # Per (login, address): three wrong passwords from one address lock that address out of the login,
    # even for the right password.
    c = _from(app, "10.0.0.1")
    for _ in range(3):
        assert _try(c, h.OPS_LOGIN, "wrong password").status_code == 401
    r = _try(c, h.OPS_LOGIN, h.OPS_PASSWORD)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 600
    assert "Too many failed sign-ins" in r.get_data(as_text=True)
    # ... and not the owner at another address.
    assert _try(_from(app, "10.0.0.9"), h.OPS_LOGIN, h.OPS_PASSWORD).status_code == 302
    # Per address: five failures on five different logins lock that address out, not others.
    c = _from(app, "10.0.1.1")
    for i in range(5):
        assert _try(c, f"someone{i}", "wrong password").status_code == 401
    assert _try(c, "someone-else", "wrong password").status_code == 429
    other = _from(app, "10.0.1.2")
    _new_ops(seeded, "ops-limit")
    assert _try(other, "ops-limit", "a long password").status_code == 302


def test_guesses_from_many_addresses_slow_the_login_down_without_locking_the_owner_out(seeded, tmp_path, h):
    app = _app(seeded, tmp_path, SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT=3, SWARMLENS_LOGIN_FAILURES_PER_ADDRESS=50,
               SWARMLENS_LOGIN_WINDOW_SECONDS=600)
    _new_ops(seeded, "ops-spray")
    attackers = [_from(app, f"10.2.0.{i}") for i in range(1, 9)]
    for c in attackers:  # 8 failures from 8 addresses: past the 3 per login, the login is slowed
        assert _try(c, "ops-spray", "wrong password").status_code == 401
    waits = []
    for c in attackers[:3]:  # an address that failed waits, and the wait grows with the failures
        r = _try(c, "ops-spray", "a long password")
        assert r.status_code == 429
        waits.append(int(r.headers["Retry-After"]))
    assert waits[0] >= 2 ** (8 - 3) - 1 and max(waits) <= 600
    # The owner, from an address with no failure, signs in with the right password at once.
    assert _try(_from(app, "10.2.1.1"), "ops-spray", "a long password").status_code == 302
    # A new address with a wrong guess gets its one guess, then is slowed like the others.
    newcomer = _from(app, "10.2.1.2")
    assert _try(newcomer, "ops-spray", "wrong password").status_code == 401
    r = _try(newcomer, "ops-spray", "wrong password")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 2 ** (9 - 3) - 1


# ---------------------------------------------------------------------------------------------
# Headers and CSP


def test_every_response_carries_csp_and_security_headers(app, ops, anon, seeded, h):
    responses = [anon.get("/login"), anon.get("/static/style.css"), anon.get("/nowhere"), anon.get("/healthz"),
                 ops.get("/"), ops.get(f"/tasks/{seeded.task_ids['handoff']}"), ops.get("/reports/monthly.csv"),
                 anon.get("/api/v1/me", headers=h.bearer(seeded.tokens["alice"]))]
    for r in responses:
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        for k, v in HEADERS.items():
            assert r.headers.get(k) == v


@pytest.mark.parametrize("path", ["/", "/users", "/users/alice", "/search?q=order", "/agents", "/reports/monthly",
                                  "/reports/weekly", "/feedback", "/admin/plans", "/admin/prices", "/admin/tokens",
                                  "/admin/quotas", "/nowhere"])
def test_pages_have_no_inline_script_or_style_attribute(ops, path):
    html = ops.get(path).get_data(as_text=True)
    assert "<svg" in html or path in ("/admin/plans", "/admin/prices", "/admin/tokens", "/admin/quotas", "/nowhere",
                                      "/search?q=order", "/users", "/feedback")
    tags = re.findall(r"<[a-zA-Z][^<>]*>", html)  # escaped text (&lt;img onerror=...) is no tag
    assert [t for t in tags if re.match(r"<script(?![^>]*\bsrc=)", t)] == []
    assert [t for t in tags if re.search(r"\s(style|on[a-z]+)=", t) or "javascript:" in t] == []


def test_task_page_with_svg_charts_has_no_style_attribute(ops, seeded):
    html = ops.get(f"/tasks/{seeded.task_ids['handoff']}").get_data(as_text=True)
    assert "<svg" in html and "sw-agent" in html and re.findall(r"\sstyle=", html) == []


# ---------------------------------------------------------------------------------------------
# Hostile input


def test_deeply_nested_json_input_renders_on_the_page_and_in_the_pdf(app, ops, seeded):
    from swarmlens.reports import task as task_report
    from swarmlens_testing.spans import Stretch, insert_spans, task_spans

    deep = "[" * 50_000 + "]" * 50_000
    spans = task_spans(user_id="alice", start=seeded.day_ts(seeded.today) + timedelta(seconds=300),
                       stretches=[Stretch("Triage Agent")], input=deep)
    insert_spans(seeded.client, spans, database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    task_id = spans[0]["TraceId"]
    wait_until(lambda: task_report.find(seeded.client, seeded.config, task_id), 30, 0.1, "the deep task")
    r = ops.get(f"/tasks/{task_id}")
    assert r.status_code == 200 and "[[[[[[[[" in r.get_data(as_text=True)
    r = ops.get(f"/tasks/{task_id}/report.pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    from swarmlens.render.fmt import pretty

    assert pretty('{"a": [1, {"b": 2}]}')["json"] and not pretty(deep)["json"]


def test_a_date_range_beyond_what_the_store_holds_is_taken_as_its_nearest_day(ops, seeded, h):
    # The OpenAPI document allows any date: before 1970 means "from the start", as it does on the pages.
    # A range reaching into the future is cut at today (nothing after it is stored yet).
    r = ops.get("/api/v1/users/alice/tasks?from=0001-01-01&to=9999-12-31", headers=h.bearer(seeded.tokens["ops"]))
    assert r.status_code == 200 and r.get_json()["from"] == "1970-02-01"
    # (the day may turn between the seed and the request)
    assert r.get_json()["to"] in (seeded.today.isoformat(), (seeded.today + timedelta(days=1)).isoformat())
    assert r.get_json()["tasks"]
    assert ops.get("/search?from=0090-07-25").status_code == 200
    r = ops.get("/search?from=9999-01-01")  # after today's `to`
    assert r.status_code == 400 and "from must not be after to" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/reports/monthly?month=0001-01", "/reports/weekly?week=9999-W52",
                                  "/reports/monthly.csv?month=9999-12", "/users/alice/report.pdf?month=0001-01"])
def test_out_of_range_months_and_weeks_are_a_clear_400(ops, seeded, h, path):
    headers = h.bearer(seeded.tokens["ops"]) if path.startswith("/api/") else {}
    r = ops.get(path, headers=headers)
    assert r.status_code == 400, (path, r.status_code)
    assert "must be between 1970" in r.get_data(as_text=True)


@pytest.mark.parametrize("when", ["0090-07-25T00:00:00+00:00", "9999-12-31T23:59:59+00:00"])
def test_a_cursor_holding_an_out_of_range_date_is_a_400(ops, seeded, h, when):
    import base64

    cursor = base64.urlsafe_b64encode(f"{when}|abc".encode()).decode().rstrip("=")
    for path in (f"/users/alice?cursor={cursor}", f"/search?cursor={cursor}"):
        r = ops.get(path)
        assert r.status_code == 400 and "cursor" in r.get_data(as_text=True), path
    r = ops.get(f"/api/v1/users/alice/tasks?cursor={cursor}", headers=h.bearer(seeded.tokens["ops"]))
    assert r.status_code == 400 and r.get_json()["error"]["status"] == 400


def test_api_timestamps_are_rfc3339_with_zone_as_the_openapi_document_says(anon, seeded, h):
    task = seeded.task_ids["handoff"]
    d = anon.get(f"/api/v1/tasks/{task}", headers=h.bearer(seeded.tokens["bob"])).get_json()
    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
    for key in ("start_time", "end_time"):
        assert rfc3339.match(d[key]), d[key]
        assert datetime.fromisoformat(d[key].replace("Z", "+00:00")).tzinfo is not None
    hist = anon.get("/api/v1/me/tasks", headers=h.bearer(seeded.tokens["bob"])).get_json()
    assert all(rfc3339.match(t["start_time"]) for t in hist["tasks"])
    doc = anon.get("/api/v1/openapi.json").get_json()
    assert '"format": "date-time"' in str(doc).replace("'", '"')


def test_csv_neutralises_every_formula_start_and_quotes_it(app, ops, seeded):
    from swarmlens_testing.spans import Stretch, insert_spans, task_spans

    hostile = ["\t=1+1", "\r=1+1", "\t@SUM(A1)", "  =cmd", "+1", "-1", "@x", "\n=1"]
    spans = []
    for i, user in enumerate(hostile):
        spans += task_spans(user_id=user, start=seeded.day_ts(seeded.today) + timedelta(seconds=400 + i),
                            stretches=[Stretch("Triage Agent")])
    insert_spans(seeded.client, spans, database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    def exported():
        text = ops.get("/reports/monthly.csv?table=users").get_data(as_text=True)
        found = [r["user_id"] for r in csv.DictReader(io.StringIO(text, newline=""))]
        return (text, found) if all(("'" + u) in found for u in hostile) else None

    body, users = wait_until(exported, 30, 0.2, "the hostile user ids in the CSV")
    for u in hostile:
        assert "'" + u in users, repr(u)
    for u in ("\r=1+1", "\t=1+1"):
        assert '"\'' + u + '"' in body  # quoted, so no reader splits or trims it
    from swarmlens.render.csvsafe import cell

    assert cell(-5) == -5 and cell("alice") == "alice" and cell(" \t-x") == "' \t-x"


def test_a_users_search_form_lists_only_agents_they_used(ops, anon, seeded, h):
    alice = anon.get("/search?format=json", headers=h.bearer(seeded.tokens["alice"])).get_json()
    bob = anon.get("/search?format=json", headers=h.bearer(seeded.tokens["bob"])).get_json()
    assert "Billing Agent" in bob["agents"] and "Billing Agent" not in alice["agents"]
    assert "Billing Agent" in ops.get("/search?format=json").get_json()["agents"]
    html = anon.get("/search", headers=h.bearer(seeded.tokens["alice"])).get_data(as_text=True)
    assert "Billing Agent" not in html
    page = anon.get("/users/alice", headers=h.bearer(seeded.tokens["alice"])).get_data(as_text=True)
    assert "Billing Agent" not in page
