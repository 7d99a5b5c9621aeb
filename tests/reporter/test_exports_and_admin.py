"""CSV exports, PDF text (pypdf), XSS escaping, the admin forms (plans, prices applied
retroactively, tokens) and the `swarmlens users|plans|prices` commands."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest


def pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(body))
    return "\n".join(page.extract_text() for page in reader.pages)


def csv_rows(resp) -> list[dict]:
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))


@pytest.mark.parametrize("kind", ["weekly", "monthly"])
def test_every_report_table_exports_as_csv(ops, kind):
    d = ops.get(f"/reports/{kind}?format=json").get_json()
    for table in ("totals", "daily", "users", "agents", "models"):
        rows = csv_rows(ops.get(f"/reports/{kind}.csv?table={table}"))
        assert len(rows) == len(d[table]), table
    users = csv_rows(ops.get(f"/reports/{kind}.csv?table=users"))
    assert [(r["user_id"], int(r["tokens"])) for r in users] == [(u["user_id"], u["tokens"]) for u in d["users"]]
    assert float(users[0]["cost_usd"]) == pytest.approx(d["users"][0]["cost_usd"], abs=1e-6)
    totals = {r["figure"]: r for r in csv_rows(ops.get(f"/reports/{kind}.csv?table=totals"))}
    assert int(totals["Tasks"]["current"]) == next(t["current"] for t in d["totals"] if t["key"] == "tasks")
    models = csv_rows(ops.get(f"/reports/{kind}.csv?table=models"))
    assert list(models[0]) == ["model", "calls", "input_tokens", "output_tokens", "tokens", "errors",
                               "usd_per_1m_input", "usd_per_1m_output", "cost_usd", "previous_tokens", "change"]
    assert ops.get(f"/reports/{kind}.csv?table=secrets").status_code == 400


def test_csv_disarms_spreadsheet_formulas(app, ops, seeded):
    from swarmlens_testing.spans import Stretch, insert_spans, task_spans

    spans = task_spans(user_id="=HYPERLINK(\"http://x\")", start=seeded.day_ts(seeded.today) + timedelta(seconds=5),
                       stretches=[Stretch("Triage Agent")])
    insert_spans(seeded.client, spans, database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    rows = csv_rows(ops.get("/reports/monthly.csv?table=users"))
    assert "'=HYPERLINK(\"http://x\")" in [r["user_id"] for r in rows]


def test_usage_report_pdf_text(ops, seeded):
    d = ops.get("/reports/monthly?format=json").get_json()
    r = ops.get("/reports/monthly.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    text = pdf_text(r.data)
    tasks = next(t["current"] for t in d["totals"] if t["key"] == "tasks")
    assert f"Monthly usage report: {d['period']['key']}" in text
    for needle in ("Totals", "By user", "By agent", "By model", "Average tokens per task", f"{tasks:,}",
                   "alice", "Triage Agent", "gpt-4o-mini", "o3-mini", "(no price)"):
        assert needle in text, needle
    assert "Weekly usage report" in pdf_text(ops.get("/reports/weekly.pdf").data)


def test_user_monthly_pdf_text(ops, seeded):
    page = ops.get("/users/bob?format=json").get_json()
    text = pdf_text(ops.get("/users/bob/report.pdf").data)
    assert "Monthly usage: bob" in text
    assert "OVER QUOTA" in text and f"{page['quota']['tokens']:,}" in text
    assert "Billing Agent" in text and "Tokens and tasks per day" in text
    last = (seeded.today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    downloaded_bytes = ops.get(f"/users/bob/report.pdf?month={last}").data
    downloaded = pdf_text(downloaded_bytes)
    assert "Monthly usage: bob" in downloaded
    assert ops.get("/users/bob/report.pdf?month=13-2026").status_code == 400
    # a past month's download is the document the monthly mail carries: that month's figures, quota
    # included, not the current month's
    from swarmlens.render import pdf
    from swarmlens.notify.scheduled import user_month_context
    from swarmlens.reports import common as rc

    month = rc.month_period(last)
    with ops.application.app_context():
        from swarmlens.web.common import client, config

        ctx = user_month_context(client(), config(), "bob", month)
    assert pdf.user_month_pdf(ctx) == downloaded_bytes  # the same bytes, creation date included
    assert ctx["month"]["key"] == last


def test_task_pdf_text(ops, seeded):
    task = seeded.task_ids["handoff"]
    text = pdf_text(ops.get(f"/tasks/{task}/report.pdf").data)
    assert f"Task {task}" in text
    assert "Triage Agent → Refunds Agent → Triage Agent" in text or "Triage Agent -> Refunds Agent" in text
    assert "Waterfall" in text and "transfer_to_Refunds Agent" in text and "took too long" in text
    json_task = pdf_text(ops.get(f"/tasks/{seeded.task_ids['json']}/report.pdf").data)
    assert '"order": 42' in json_task


def test_xss_payloads_are_escaped(ops, seeded, h):
    task = seeded.task_ids["xss"]
    html = ops.get(f"/tasks/{task}").get_data(as_text=True)
    assert h.XSS not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    # A feedback comment carrying markup, from the API, shows as text on the task and feedback pages.
    r = ops.post(f"/tasks/{task}/feedback", data={"vote": "down", "comment": '<b onmouseover="alert(2)">bold</b>',
                                                   "csrf_token": h.csrf_of(ops, "/users")})
    assert r.status_code == 303
    for path in (f"/tasks/{task}", "/feedback", "/users/alice", "/search?q=script"):
        page = ops.get(path).get_data(as_text=True)
        assert "<b onmouseover" not in page and "<script>alert" not in page, path
    assert "&lt;b onmouseover=&#34;alert(2)&#34;&gt;bold&lt;/b&gt;" in ops.get(f"/tasks/{task}").get_data(as_text=True)
    assert ops.get(f"/tasks/{task}?format=json").get_json()["task"]["input"] == h.XSS


def test_feedback_form_latest_vote_wins(ops, seeded, h):
    task = seeded.task_ids["outlier"]
    for vote, comment in (("up", "first"), ("down", "changed my mind")):
        r = ops.post(f"/tasks/{task}/feedback", data={"vote": vote, "comment": comment,
                                                       "csrf_token": h.csrf_of(ops, "/users")})
        assert r.status_code == 303 and r.headers["Location"].endswith(f"/tasks/{task}#feedback")
    d = ops.get(f"/tasks/{task}?format=json").get_json()
    assert [(f["user_id"], f["vote"], f["comment"]) for f in d["feedback"]] == [("ops:admin", -1, "changed my mind")]
    assert d["my_vote"]["vote"] == -1
    r = ops.post(f"/tasks/{task}/feedback", data={"vote": "maybe", "csrf_token": h.csrf_of(ops, "/users")})
    assert r.status_code == 422 and "vote must be" in r.get_data(as_text=True)


def test_price_change_is_retroactive(ops, seeded, h):
    before = ops.get("/reports/monthly?format=json").get_json()
    mini = next(m for m in before["models"] if m["model"] == "gpt-4o-mini")
    csrf = h.csrf_of(ops, "/admin/prices")
    r = ops.post("/admin/prices", data={"model": "gpt-4o-mini", "usd_per_1m_input": "1.5", "usd_per_1m_output": "6",
                                        "csrf_token": csrf})
    assert r.status_code == 303
    after = ops.get("/reports/monthly?format=json").get_json()
    mini2 = next(m for m in after["models"] if m["model"] == "gpt-4o-mini")
    assert mini2["cost_usd"] == pytest.approx((mini["input_tokens"] * 1.5 + mini["output_tokens"] * 6) / 1e6)
    assert mini2["cost_usd"] == pytest.approx(mini["cost_usd"] * 10)
    # Unpriced model gets a price: its cost appears for past usage too.
    r = ops.post("/admin/prices", data={"model": "o3-mini", "usd_per_1m_input": "1.1", "usd_per_1m_output": "4.4",
                                        "csrf_token": csrf})
    assert r.status_code == 303
    assert "o3-mini" not in [m["model"] for m in ops.get("/?format=json").get_json()["unpriced_models"]]
    for bad in ({"model": "gpt-4o", "usd_per_1m_input": "-1", "usd_per_1m_output": "1"},
                {"model": "gpt-4o", "usd_per_1m_input": "free", "usd_per_1m_output": "1"},
                {"model": "", "usd_per_1m_input": "1", "usd_per_1m_output": "1"}):
        r = ops.post("/admin/prices", data={**bad, "csrf_token": csrf})
        assert r.status_code == 422 and "alert error" in r.get_data(as_text=True)
    # restore for the other tests of this module
    ops.post("/admin/prices", data={"model": "gpt-4o-mini", "usd_per_1m_input": h.PRICES["gpt-4o-mini"][0],
                                    "usd_per_1m_output": h.PRICES["gpt-4o-mini"][1], "csrf_token": csrf})


def test_admin_plans_and_assignment(ops, h):
    csrf = h.csrf_of(ops, "/admin/plans")
    r = ops.post("/admin/plans", data={"action": "plan", "plan": "tiny", "quota": "1000", "warn_at_percent": "50",
                                       "display_name": "Tiny", "csrf_token": csrf})
    assert r.status_code == 303
    r = ops.post("/admin/plans", data={"action": "assign", "user_id": "carol", "plan": "tiny", "csrf_token": csrf})
    assert r.status_code == 303
    carol = ops.get("/users/carol?format=json").get_json()["quota"]
    assert carol["plan"] == "tiny" and carol["quota"] == 1000 and carol["level"] == "over"
    plans = {p["plan"]: p for p in ops.get("/admin/plans?format=json").get_json()["plans"]}
    assert plans["tiny"]["users"] == 1 and plans["tiny"]["warn_at_percent"] == 50
    for bad in ({"action": "plan", "plan": "x y", "quota": "10"}, {"action": "plan", "plan": "p", "quota": "lots"},
                {"action": "plan", "plan": "p", "quota": "10", "warn_at_percent": "150"},
                {"action": "assign", "user_id": "carol", "plan": "no-such-plan"}):
        r = ops.post("/admin/plans", data={**bad, "csrf_token": csrf})
        assert r.status_code == 422, bad
    ops.post("/admin/plans", data={"action": "assign", "user_id": "carol", "plan": "pro", "csrf_token": csrf})


def test_admin_tokens_create_show_once_and_revoke(app, ops, h):
    csrf = h.csrf_of(ops, "/admin/tokens")
    r = ops.post("/admin/tokens", data={"action": "create", "scope": "user", "owner": "carol", "name": "ci",
                                        "expires_days": "30", "csrf_token": csrf})
    assert r.status_code == 201
    token = re.search(r'<code id="new-token">(slk_[^<]+)</code>', r.get_data(as_text=True)).group(1)
    c = app.test_client()
    assert c.get("/api/v1/me", headers=h.bearer(token)).get_json()["id"] == "carol"
    listed = ops.get("/admin/tokens?format=json").get_json()["tokens"]
    entry = next(t for t in listed if t["name"] == "ci")
    page = ops.get("/admin/tokens").get_data(as_text=True)
    assert entry["expires_at"] and token not in page
    # a destructive action looks like one (red, not the primary blue of Create)
    assert re.search(r'<button type="submit" class="danger">Revoke</button>', page)
    r = ops.post("/admin/tokens", data={"action": "revoke", "token_hash": entry["token_hash"], "csrf_token": csrf})
    assert r.status_code == 303
    assert c.get("/api/v1/me", headers=h.bearer(token)).status_code == 401
    r = ops.post("/admin/tokens", data={"action": "create", "scope": "ops", "owner": "nobody", "csrf_token": csrf})
    assert r.status_code == 422 and "no ops account" in r.get_data(as_text=True)


def test_cli_users_plans_prices_and_tokens(app, seeded, monkeypatch, capsys):
    from swarmlens.commands import dispatch as cli

    for key, value in seeded.config.items():
        if key.startswith("SWARMLENS_"):
            monkeypatch.setenv(key, str(value))

    def run(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run("plans", "set", "starter", "--quota", "50000", "--name", "Starter")[0] == 0
    code, out, _ = run("plans", "list")
    assert code == 0 and "starter" in out and "50,000" in out
    assert run("plans", "set", "bad plan", "--quota", "1")[0] == 1
    assert run("users", "add", "erin", "--plan", "starter", "--name", "Erin")[0] == 0
    assert run("users", "assign", "erin", "nope")[0] == 1
    code, out, _ = run("users", "list")
    assert code == 0 and "erin" in out and "starter" in out and "admin" in out
    assert run("prices", "set", "gpt-4.1", "--input", "2", "--output", "8")[0] == 0
    code, out, _ = run("prices", "list")
    assert "gpt-4.1" in out and "8.0000" in out
    assert run("prices", "set", "gpt-4.1", "--input", "two", "--output", "8")[0] == 1
    code, token, err = run("users", "token", "create", "--user", "erin", "--name", "erin app")
    token = token.strip()
    assert code == 0 and token.startswith("slk_") and "shown only now" in err
    client = app.test_client()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()["id"] == "erin"
    code, out, _ = run("users", "token", "list", "--owner", "erin")
    assert "erin app" in out and token not in out
    assert run("users", "token", "revoke", token)[0] == 0
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert run("users", "add-ops", "ops2", "--password-stdin", stdin="another long password\n")[0] == 0
    assert run("users", "add-ops", "ops2", "--password-stdin", stdin="another long password\n")[0] == 1
    assert run("users", "set-password", "ops2", "--password-stdin", stdin="short\n")[0] == 1
    assert run("users", "set-password", "ops2", "--password-stdin", stdin="a new long password\n")[0] == 0
    from swarmlens import auth

    assert auth.check_ops_password(seeded.client, seeded.config, "ops2", "a new long password")
    code, out, _ = run("users", "token", "create", "--ops", "ops2")
    assert code == 0 and out.strip().startswith("slk_")
    assert run("users")[0] == 2
