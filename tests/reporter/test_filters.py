"""Filters and date ranges on the dashboard, agents, reports and search pages; empty states; search
count, highlighting and prefix matching; the history's output column; CSV of history and search; the
API reference page; per-user PDF names; the price form keeping its input."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest


def test_dashboard_narrowed_to_an_agent_counts_its_runs(ops, seeded):
    everyone = ops.get("/?period=30d&format=json").get_json()
    billing_runs = {a["agent"]: a for a in everyone["top_agents"]}["Billing Agent"]["runs"]
    d = ops.get("/?period=30d&agent=Billing+Agent&format=json").get_json()
    assert d["level"] == "agent" and d["filters"]["agent"] == "Billing Agent"
    assert d["figures"]["runs"] == billing_runs > 0
    # Only bob uses the Billing Agent.
    assert [u["user_id"] for u in d["top_users"]] == ["bob"] and d["figures"]["active_users"] == 1
    assert [a["agent"] for a in d["top_agents"]] == ["Billing Agent"]
    assert sum(r["runs"] for r in d["daily"]) == billing_runs
    # The same agent by its model (o3-mini is the Billing Agent's alone).
    m = ops.get("/?period=30d&model=o3-mini&format=json").get_json()
    assert m["figures"]["runs"] == billing_runs and m["figures"]["tokens"] == d["figures"]["tokens"]


def test_dashboard_filters_stay_in_every_link(ops):
    html = ops.get("/?from=2026-01-01&to=2026-01-31&user=bob&agent=Billing+Agent").get_data(as_text=True)
    assert 'value="2026-01-01"' in html and 'value="2026-01-31"' in html and 'value="bob"' in html
    assert "<option selected>Billing Agent</option>" in html
    # The period pills keep the scope; "Clear filters" drops everything.
    assert "/?period=7d&amp;user=bob&amp;agent=Billing+Agent" in html
    assert 'class="clear" href="/"' in html


def test_dashboard_date_range_and_its_comparison(ops, seeded):
    start, end = seeded.today - timedelta(days=13), seeded.today - timedelta(days=7)
    d = ops.get(f"/?from={start}&to={end}&format=json").get_json()
    assert d["period"]["start"] == start.isoformat()
    assert d["period"]["end_exclusive"] == (end + timedelta(days=1)).isoformat()
    assert [r["day"] for r in d["daily"]] == [(start + timedelta(days=i)).isoformat() for i in range(7)]
    # The comparison is the seven days before.
    assert d["previous_period"]["start"] == (start - timedelta(days=7)).isoformat()
    whole = ops.get("/?period=30d&format=json").get_json()
    by_day = {r["day"]: r["tasks"] for r in whole["daily"]}
    assert d["figures"]["tasks"] == sum(by_day[r["day"]] for r in d["daily"])


@pytest.mark.parametrize("query, message", [
    ("from=2026-02-30", "from must be a date"),
    ("from=2026-03-10&to=2026-03-01", "from must not be after to"),
    ("from=2024-01-01&to=2026-01-01", "at most 366 days"),
])
def test_bad_date_ranges_are_a_400_that_says_why(ops, query, message):
    # Search takes ranges of any length: it draws no bar per day.
    for path in ("/", "/agents") + (("/search",) if "366" not in message else ()):
        r = ops.get(f"{path}?{query}")
        assert r.status_code == 400 and message in r.get_data(as_text=True), path


def test_dashboard_with_nothing_matching_shows_empty_states(ops):
    html = ops.get("/?period=30d&user=carol&agent=Billing+Agent").get_data(as_text=True)
    assert "No agent runs match these filters in this period." in html
    assert "Narrowed to user <strong>carol</strong>, agent <strong>Billing Agent</strong>:" in html
    # What the filters hold is text, never markup.
    hostile = ops.get("/?period=30d&user=%3Cb%3Ex").get_data(as_text=True)
    assert "user <strong>&lt;b&gt;x</strong>" in hostile and "<b>x" not in hostile
    assert "<svg class=\"wide\"" not in html  # no flat chart
    d = ops.get("/?period=30d&user=carol&agent=Billing+Agent&format=json").get_json()
    assert d["figures"]["runs"] == 0 and d["changes"]["error_rate"] is None


def test_charts_have_a_title_and_a_data_table(ops, seeded):
    html = ops.get("/?period=7d").get_data(as_text=True)
    assert '<figcaption id="trend-title" class="chart-title">Tokens and tasks per day</figcaption>' in html
    assert 'aria-labelledby="trend-title trend-desc"' in html
    assert "<summary>Data table</summary>" in html
    assert f'<th scope="row">{seeded.today.isoformat()}</th>' in html
    # No day after today, even when the period runs on (this month).
    month = ops.get("/?period=this_month&format=json").get_json()
    assert month["daily"][-1]["day"] == seeded.today.isoformat()


def test_change_colours_follow_the_measure(ops):
    d = ops.get("/?period=7d&format=json").get_json()
    html = ops.get("/?period=7d").get_data(as_text=True)
    cost = d["changes"]["cost_usd"]
    if cost is not None and round(cost * 1000):
        want = "bad" if cost > 0 else "good"
        assert f'<span class="{want}">{cost * 100:+,.1f}%</span>' in html
    rate = d["changes"]["error_rate"]
    if rate is not None:
        assert f"{rate * 100:+.1f} pp" in html  # percentage points, not a relative change


def _pdf_pages(body: bytes) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() for p in PdfReader(io.BytesIO(body)).pages]


def test_search_counts_marks_and_finds_words_by_their_start(ops, seeded):
    start = (seeded.today - timedelta(days=70)).isoformat()
    whole = ops.get(f"/search?q=refund&from={start}&limit=500&format=json").get_json()
    prefix = ops.get(f"/search?q=REFUN&from={start}&limit=500&format=json").get_json()
    assert whole["count"] > 0 and not whole["count_capped"]
    # "refun" finds what "refund" finds (the seed has no other word that starts so), in any case.
    assert {t["task_id"] for t in prefix["tasks"]} == {t["task_id"] for t in whole["tasks"]}
    assert prefix["count"] == whole["count"] == len(whole["tasks"])
    html = ops.get(f"/search?q=refun&from={start}").get_data(as_text=True)
    assert f"<strong>{whole['count']:,}</strong> tasks" in html
    assert "<mark>refund</mark>" in html  # the whole word is marked
    # Short words still match whole words only: "ref" finds nothing.
    assert ops.get(f"/search?q=ref&from={start}&format=json").get_json()["count"] == 0
    empty = ops.get(f"/search?q=zzzzqqq&from={start}").get_data(as_text=True)
    assert "<strong>0</strong> tasks" in empty and "No tasks match" in empty


def test_search_results_and_a_users_history_download_as_csv(ops, seeded, h):
    start = (seeded.today - timedelta(days=70)).isoformat()
    page = ops.get(f"/search?q=refun&from={start}&limit=500&format=json").get_json()
    r = ops.get(f"/search.csv?q=refun&from={start}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert f"swarmlens-search-{start}-{seeded.today.isoformat()}.csv" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["task_id"] for row in rows] == [t["task_id"] for t in page["tasks"]]
    assert all("refund" in (row["input"] + row["output"]).lower() for row in rows)
    # A user's history: every task of the 90 days, with its output; a user may download only their own.
    hist = ops.get("/users/bob/history.csv")
    assert "swarmlens-bob-history-" in hist.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(hist.get_data(as_text=True))))
    assert {row["user_id"] for row in rows} == {"bob"} and len(rows) == len(seeded.tasks_by_user["bob"])
    assert any(row["output"] for row in rows)
    assert ops.get("/users/bob/history.csv", headers=h.bearer(seeded.tokens["alice"])).status_code == 404


def test_history_shows_the_output_and_an_empty_state(ops, seeded, h):
    html = ops.get("/users/alice").get_data(as_text=True)
    assert '<th scope="col">Output</th>' in html and "CSV (90 days)" in html
    # Both charts of the page (usage per day, tokens by agent) have their figures as a table.
    assert html.count("<summary>Data table</summary>") == 2 and '<th scope="row">Triage Agent</th>' in html
    assert any(o in html for o in ("Your order ships tomorrow.", "The refund is on its way.", "I corrected the invoice.",
                                   "A reset link was sent to your email.", "Your plan is upgraded."))
    # A configured user who never ran a task: the history says so.
    dave = ops.get("/users/dave").get_data(as_text=True)
    assert "No tasks yet: they appear here as soon as this user runs one." in dave
    assert "No tasks in the last 30 days." in dave  # the chart's empty state, not a flat line


def test_agents_page_filters_and_date_range(ops, seeded):
    d = ops.get("/agents?period=30d&user=bob&format=json").get_json()
    assert d["level"] == "agent"
    names = {a["agent"] for a in d["agents"]}
    assert "Billing Agent" in names and all(a["tasks"] is not None for a in d["agents"])
    carol = ops.get("/agents?period=30d&user=carol&format=json").get_json()
    assert "Billing Agent" not in {a["agent"] for a in carol["agents"]}
    by_model = ops.get("/agents?period=30d&model=o3-mini&format=json").get_json()
    assert [a["agent"] for a in by_model["agents"]] == ["Billing Agent"]
    assert by_model["agents"][0]["tasks"] is None  # tasks are not split by model
    html = ops.get("/agents?period=30d&model=o3-mini&sort=tokens").get_data(as_text=True)
    assert "Tasks and tokens per task are not split by model" in html
    assert "/agents?period=30d&amp;model=o3-mini&amp;sort=cost_usd" in html  # sorting keeps the filters
    start, end = seeded.today - timedelta(days=9), seeded.today - timedelta(days=3)
    ranged = ops.get(f"/agents?from={start}&to={end}&format=json").get_json()
    assert ranged["period"]["days"] == 7 and ranged["agents"]


def test_report_of_a_custom_range(ops, seeded):
    start, end = seeded.today - timedelta(days=20), seeded.today - timedelta(days=6)
    d = ops.get(f"/reports/custom?from={start}&to={end}&format=json").get_json()
    assert d["kind"] == "custom" and d["period"]["days"] == 15
    assert d["previous_period"]["start"] == (start - timedelta(days=15)).isoformat()
    dash = ops.get(f"/?from={start}&to={end}&format=json").get_json()
    tasks = {t["key"]: t for t in d["totals"]}["tasks"]["current"]
    assert tasks == dash["figures"]["tasks"]
    r = ops.get(f"/reports/custom.csv?from={start}&to={end}&table=daily")
    assert r.status_code == 200 and len(r.get_data(as_text=True).strip().splitlines()) == 16
    assert f"swarmlens-custom-{start}..{end}-daily.csv" in r.headers["Content-Disposition"]
    pdf = ops.get(f"/reports/custom.pdf?from={start}&to={end}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert f"Custom usage report: {start}..{end}" in "\n".join(_pdf_pages(pdf.data))
    assert ops.get("/reports/custom?format=json").get_json()["period"]["days"] == 30  # no dates: the last 30 days
    assert ops.get(f"/reports/custom?from={end}&to={start}").status_code == 400


def test_api_reference_page_is_rendered_from_the_openapi_document(ops, anon):
    doc = anon.get("/api/v1/openapi.json").get_json()
    html = anon.get("/docs/api").get_data(as_text=True)
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in html
    assert 'id="schema-TaskDetail"' in html and "<script" not in html and "cdn" not in html.lower()
    assert '<a href="/docs/api"' in ops.get("/").get_data(as_text=True)  # linked from the menu


def test_pdfs_are_named_by_user_and_period_and_waste_no_page(ops, seeded):
    r = ops.get("/users/bob/report.pdf")
    assert f'filename="swarmlens-bob-{seeded.today:%Y-%m}.pdf"' in r.headers["Content-Disposition"]
    task = seeded.task_ids["handoff"]
    r = ops.get(f"/tasks/{task}/report.pdf")
    assert f'filename="swarmlens-task-{task}.pdf"' in r.headers["Content-Disposition"]
    # A task nobody voted on: no "Thumbs up: 0" section, so nothing spills onto a page of its own.
    pages = _pdf_pages(ops.get(f"/tasks/{seeded.task_ids['error']}/report.pdf").data)
    text = "\n".join(pages)
    assert "Thumbs up" not in text and "Feedback" not in text
    assert all(len(p.strip().splitlines()) > 3 for p in pages)
    voted = "\n".join(_pdf_pages(ops.get(f"/tasks/{seeded.task_ids['handoff']}/report.pdf").data))
    assert "Thumbs up: 0   Thumbs down: 1" in voted


def test_price_form_keeps_its_input_on_a_validation_error(ops, h):
    r = ops.post("/admin/prices", data={"model": "my-model", "usd_per_1m_input": "1.25", "usd_per_1m_output": "lots",
                                         "csrf_token": h.csrf_of(ops, "/admin/prices")})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and 'role="alert"' in html
    assert 'value="my-model"' in html and 'value="1.25"' in html and 'value="lots"' in html


def test_search_count_covers_every_page(ops, seeded):
    start = (seeded.today - timedelta(days=70)).isoformat()
    first = ops.get(f"/search?from={start}&limit=5&format=json").get_json()
    assert first["next_cursor"] and first["count"] > 5
    second = ops.get(f"/search?from={start}&limit=5&cursor={first['next_cursor']}&format=json").get_json()
    assert second["count"] == first["count"]
    everything = ops.get(f"/search?from={start}&limit=500&format=json").get_json()
    assert everything["next_cursor"] is None and everything["count"] == len(everything["tasks"]) == first["count"]
