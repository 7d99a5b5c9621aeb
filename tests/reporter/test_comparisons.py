"""Fair comparisons on pages, JSON and PDFs, on a fixed clock: a week or month still running is
compared with the same days of the one before, a range reaching into the future is cut at today,
and the page says so. Every figure of the comparison is checked against the raw spans."""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta, timezone

import pytest

from swarmlens.reports import common as rc

TOKENS = ("sum(toUInt64OrZero(SpanAttributes['swarm.task.usage.input_tokens']) "
          "+ toUInt64OrZero(SpanAttributes['swarm.task.usage.output_tokens']))")


def raw(seeded, start: date, end: date) -> tuple[int, int]:
    """Tasks and task tokens in [start, end) from the raw spans."""
    ((tasks, tokens),) = seeded.raw(
        f"SELECT count(DISTINCT TraceId), {TOKENS} FROM {{otel:Identifier}}.otel_traces "
        "WHERE SpanName = 'invoke_workflow swarm' AND Timestamp >= {s:DateTime64(3)} AND Timestamp < {e:DateTime64(3)}",
        s=datetime.combine(start, time(), tzinfo=timezone.utc), e=datetime.combine(end, time(), tzinfo=timezone.utc))
    return tasks, tokens


def pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


@pytest.fixture
def wednesday(seeded, monkeypatch) -> date:
    """The clock stopped on a Wednesday two to three weeks back, inside the seeded data."""
    d = seeded.today - timedelta(days=14)
    now = d - timedelta(days=d.weekday()) + timedelta(days=2)
    monkeypatch.setattr(rc, "today", lambda: now)
    return now


def test_a_running_week_is_compared_with_the_same_days_of_last_week(ops, seeded, wednesday):
    monday = wednesday - timedelta(days=2)
    year, week, _ = wednesday.isocalendar()
    query = f"week={year}-W{week:02d}"
    d = ops.get(f"/reports/weekly?{query}&format=json").get_json()
    prev = d["previous_period"]
    last_monday = monday - timedelta(days=7)
    assert (prev["start"], prev["end_exclusive"], prev["days"]) == (
        last_monday.isoformat(), (last_monday + timedelta(days=3)).isoformat(), 3)
    assert prev["label"].startswith("the same 3 days of last week")
    totals = {t["key"]: t for t in d["totals"]}
    tasks, tokens = raw(seeded, last_monday, last_monday + timedelta(days=3))
    assert (totals["tasks"]["previous"], totals["tokens"]["previous"]) == (tasks, tokens)
    # Not the whole week before, which is what the comparison used to be.
    assert raw(seeded, last_monday, monday)[1] != tokens

    page = ops.get(f"/reports/weekly?{query}").get_data(as_text=True)
    assert "compared with the same 3 days of last week (" in page
    assert "as this week has run 3 days so far" in page
    text = " ".join(pdf_text(ops.get(f"/reports/weekly.pdf?{query}").data).split())
    assert "compared with the same 3 days of last week" in text


def test_a_running_month_on_the_dashboard_and_agents_pages(ops, seeded, wednesday):
    first = wednesday.replace(day=1)
    before = rc.add_months(first, -1)
    days = min(wednesday.day, (first - before).days)
    d = ops.get("/?period=this_month&format=json").get_json()
    assert (d["previous_period"]["start"], d["previous_period"]["days"]) == (before.isoformat(), days)
    tasks, tokens = raw(seeded, before, before + timedelta(days=days))
    assert (d["previous_figures"]["tasks"], d["previous_figures"]["tokens"]) == (tasks, tokens)
    page = ops.get("/?period=this_month").get_data(as_text=True)
    assert "compared with the same" in page or "compared with all of" in page
    agents = ops.get("/agents?period=this_month&format=json").get_json()
    assert agents["previous_period"] == d["previous_period"]


def test_a_custom_range_reaching_into_the_future_is_cut_at_today(ops, seeded, wednesday):
    start, end = wednesday - timedelta(days=2), wednesday + timedelta(days=40)
    query = f"from={start}&to={end}"
    d = ops.get(f"/reports/custom?{query}&format=json").get_json()
    assert (d["period"]["start"], d["period"]["end_exclusive"], d["period"]["days"]) == (
        start.isoformat(), (wednesday + timedelta(days=1)).isoformat(), 3)
    prev = d["previous_period"]
    assert (prev["start"], prev["end_exclusive"]) == ((start - timedelta(days=3)).isoformat(), start.isoformat())
    totals = {t["key"]: t for t in d["totals"]}
    assert totals["tokens"]["current"] == raw(seeded, start, wednesday + timedelta(days=1))[1]
    assert totals["tokens"]["previous"] == raw(seeded, start - timedelta(days=3), start)[1]
    words = f"cut at today (the range asked for reaches into the future, to {end:%d %b %Y})"
    page = ops.get(f"/reports/custom?{query}").get_data(as_text=True)
    assert words in page
    # The daily table stops at today: days still to come would read as a fall.
    assert d["daily"][-1]["day"] == wednesday.isoformat()
    text = " ".join(pdf_text(ops.get(f"/reports/custom.pdf?{query}").data).split())
    assert "cut at today" in text
    # The dashboard's and the agents' ranges are cut the same way, and their links keep the cut range.
    dash = ops.get(f"/?{query}").get_data(as_text=True)
    assert words in dash and f'name="to" value="{wednesday}"' in dash
    assert ops.get(f"/agents?{query}&format=json").get_json()["period"]["days"] == 3


def test_the_mailed_summary_of_a_running_month_makes_the_same_comparison(seeded, wednesday):
    """`swarmlens notify send-monthly --to` previews a month still running: its ops summary carries
    the same PDF as the page, compared with the same days of the month before."""
    from swarmlens.notify import scheduled
    from swarmlens.notify.channels import Channel, check_target

    month = rc.this_month(wednesday)
    now = datetime.combine(wednesday, time(12), tzinfo=timezone.utc)
    chan = Channel("--to", "", "email", check_target("email", "ops@example.com"), reports=True, alerts=False)
    planned = scheduled.plan_month(seeded.client, seeded.config, month, [chan], now)
    summary = next(p for p in planned if p.key.level == "summary")
    name, body = summary.make().attachment
    text = " ".join(pdf_text(body).split())
    before = rc.add_months(month.start, -1)
    days = min(wednesday.day, (month.start - before).days)
    words = "the same day of last month" if days == 1 else (
        f"the same {days} days of last month" if days < (month.start - before).days else "all of")
    assert f"compared with {words}" in text, text[:400]
