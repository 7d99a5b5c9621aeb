"""Every page, as HTML and as ?format=json, with its numbers cross-checked by independent SQL over the
raw spans in otel_traces (never over the derived tables the reporter reads)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import re

import pytest

from swarmlens.reports.search import match_params

# The keyword parameters of the search query files with no word matched from its start.
NO_PREFIXES = {k: v for k, v in match_params("").items() if k != "q"}

ROOT = "SpanName = 'invoke_workflow swarm'"
AGENT = "startsWith(SpanName, 'invoke_agent')"
TOK_IN = "toUInt64OrZero(SpanAttributes['swarm.task.usage.input_tokens'])"
TOK_OUT = "toUInt64OrZero(SpanAttributes['swarm.task.usage.output_tokens'])"


def ts(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=timezone.utc)


def month_bounds(d: date) -> tuple[date, date]:
    start = d.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def period_bounds(key: str, today: date) -> tuple[date, date]:
    if key == "7d":
        return today - timedelta(days=6), today + timedelta(days=1)
    if key == "30d":
        return today - timedelta(days=29), today + timedelta(days=1)
    if key == "this_month":
        return month_bounds(today)
    start, _ = month_bounds(today.replace(day=1) - timedelta(days=1))
    return start, today.replace(day=1)


def raw_tasks(seeded, start: date, end: date, user: str = "") -> dict:
    (tasks, tokens, errors, users), = seeded.raw(
        f"SELECT count(DISTINCT TraceId), sum({TOK_IN} + {TOK_OUT}), countIf(StatusCode = 'Error'), "
        "uniqExact(SpanAttributes['enduser.id']) FROM {otel:Identifier}.otel_traces "
        f"WHERE {ROOT} AND Timestamp >= {{s:DateTime64(3)}} AND Timestamp < {{e:DateTime64(3)}} "
        "AND ({u:String} = '' OR SpanAttributes['enduser.id'] = {u:String})", s=ts(start), e=ts(end), u=user)
    return {"tasks": tasks, "tokens": tokens, "errors": errors, "active_users": users}


def raw_cost(seeded, h, start: date, end: date, user: str = "", group: str = "") -> dict:
    """Cost from invoke_agent spans (the agent level) priced in Python."""
    rows = seeded.raw(
        f"SELECT {group or chr(39) + chr(39)} AS g, SpanAttributes['gen_ai.request.model'], "
        "sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])), "
        "sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) FROM {otel:Identifier}.otel_traces "
        f"WHERE {AGENT} AND Timestamp >= {{s:DateTime64(3)}} AND Timestamp < {{e:DateTime64(3)}} "
        "AND ({u:String} = '' OR SpanAttributes['enduser.id'] = {u:String}) GROUP BY 1, 2",
        s=ts(start), e=ts(end), u=user)
    out: dict = {}
    for g, model, tin, tout in rows:
        pin, pout = h.PRICES.get(model, (0, 0))
        out[g] = out.get(g, 0.0) + (tin * pin + tout * pout) / 1e6
    return out


@pytest.mark.parametrize("key", ["7d", "30d", "this_month", "last_month"])
def test_dashboard_figures_match_the_raw_spans(ops, seeded, h, key):
    r = ops.get(f"/?period={key}&format=json")
    assert r.status_code == 200
    d = r.get_json()
    start, end = period_bounds(key, seeded.today)
    assert (d["period"]["start"], d["period"]["end_exclusive"]) == (start.isoformat(), end.isoformat())
    want = raw_tasks(seeded, start, end)
    f = d["figures"]
    assert f["tasks"] == want["tasks"] and f["tokens"] == want["tokens"]
    assert f["active_users"] == want["active_users"]
    assert f["error_rate"] == pytest.approx(want["errors"] / want["tasks"] if want["tasks"] else 0)
    assert f["cost_usd"] == pytest.approx(raw_cost(seeded, h, start, end).get("", 0.0), rel=1e-9, abs=1e-12)
    assert sum(x["tasks"] for x in d["daily"]) == want["tasks"]
    # One row per day up to today: days still to come are not drawn as zeros.
    assert len(d["daily"]) == (min(end, seeded.today + timedelta(days=1)) - start).days
    assert d["daily"][-1]["day"] <= seeded.today.isoformat()
    prev = raw_tasks(seeded, date.fromisoformat(d["previous_period"]["start"]),
                     date.fromisoformat(d["previous_period"]["end_exclusive"]))
    assert d["previous_figures"]["tasks"] == prev["tasks"]
    # Top agents: runs per agent from invoke_agent spans.
    runs = dict(seeded.raw(f"SELECT SpanAttributes['gen_ai.agent.name'], count() FROM {{otel:Identifier}}.otel_traces "
                           f"WHERE {AGENT} AND Timestamp >= {{s:DateTime64(3)}} AND Timestamp < {{e:DateTime64(3)}} "
                           "GROUP BY 1", s=ts(start), e=ts(end)))
    assert {a["agent"]: a["runs"] for a in d["top_agents"]} == runs
    html = ops.get(f"/?period={key}").get_data(as_text=True)
    assert f"{want['tasks']:,}" in html and f"{want['tokens']:,}" in html


def test_dashboard_lists_users_near_and_over_quota(ops):
    d = ops.get("/?format=json").get_json()
    levels = {u["user_id"]: u["level"] for u in d["users_near_quota"]}
    assert levels == {"alice": "warn", "bob": "over"}
    html = ops.get("/").get_data(as_text=True)
    # alice's quota is ceil(used / 0.85): just under 85%, and shown cut, not rounded up to it.
    assert "125.0% over" in html and "84.9% warning" in html
    assert "o3-mini" in html  # unpriced model warning


def test_dashboard_rejects_an_unknown_period(ops):
    r = ops.get("/?period=fortnight")
    assert r.status_code == 400 and "period must be one of" in r.get_data(as_text=True)
    assert ops.get("/?period=fortnight&format=json").get_json()["error"]["status"] == 400


def test_users_list_shows_this_months_usage_against_quota_and_sorts(ops, seeded, h):
    d = ops.get("/users?format=json").get_json()
    start, end = month_bounds(seeded.today)
    by_user = {u["user_id"]: u for u in d["users"]}
    assert set(by_user) == {"alice", "bob", "carol", "dave", "erin"}
    for user in ("alice", "bob", "carol", "erin"):
        want = raw_tasks(seeded, start, end, user)
        assert by_user[user]["tokens"] == want["tokens"] and by_user[user]["tasks"] == want["tasks"]
        assert by_user[user]["cost_usd"] == pytest.approx(raw_cost(seeded, h, start, end, user)[""])
    assert by_user["alice"]["level"] == "warn" and by_user["bob"]["level"] == "over"
    assert by_user["carol"]["level"] == "ok" and by_user["dave"]["tokens"] in (0, None)
    assert by_user["erin"]["plan"] == "" and by_user["erin"]["level"] == "none"  # active, never configured
    assert [u["user_id"] for u in d["users"]] == sorted(by_user, key=lambda u: -(by_user[u]["tokens"] or 0))
    asc = ops.get("/users?sort=user&dir=asc&format=json").get_json()["users"]
    assert [u["user_id"] for u in asc] == ["alice", "bob", "carol", "dave", "erin"]
    pct = ops.get("/users?sort=percent&format=json").get_json()["users"]
    assert pct[0]["user_id"] == "bob"
    assert ops.get("/users?sort=password").status_code == 400
    html = ops.get("/users").get_data(as_text=True)
    assert "Alice A." in html
    # a header's first click sorts names A to Z and numbers largest first; a second click reverses
    assert re.search(r'href="/users\?sort=user&amp;dir=asc"', html) and re.search(r'href="/users\?sort=cost&amp;dir=desc"', html)
    assert re.search(r'href="/users\?sort=tokens&amp;dir=asc"', html)  # sorted by tokens, descending, now


def test_users_list_pages_through_every_user_once(ops, seeded):
    everyone = [u["user_id"] for u in ops.get("/users?sort=user&dir=asc&format=json").get_json()["users"]]
    seen = []
    for page in range(1, len(everyone) + 1):
        d = ops.get(f"/users?sort=user&dir=asc&limit=1&page={page}&format=json").get_json()
        assert d["per_page"] == 1 and d["pages"] == len(everyone) and d["page"] == page
        seen += [u["user_id"] for u in d["users"]]
    assert seen == everyone
    last = ops.get(f"/users?limit=1&page=999&format=json").get_json()
    assert last["page"] == len(everyone) and len(last["users"]) == 1
    assert ops.get("/users?page=abc").status_code == 400


def test_user_page_has_history_chart_agents_recommendation_and_quota_warning(ops, seeded):
    d = ops.get("/users/alice?format=json").get_json()
    assert d["quota"]["level"] == "warn" and d["quota"]["percent"] == 84.9
    starts = [t["start_time"] for t in d["tasks"]]
    assert starts == sorted(starts, reverse=True)
    all_alice = seeded.raw(f"SELECT TraceId FROM {{otel:Identifier}}.otel_traces WHERE {ROOT} "
                           "AND SpanAttributes['enduser.id'] = 'alice' ORDER BY Timestamp DESC, TraceId DESC")
    assert [t["task_id"] for t in d["tasks"]] == [r[0] for r in all_alice][:50]
    assert d["next_cursor"]
    # Most-used agents, from invoke_agent spans of the last 90 days.
    since = seeded.today - timedelta(days=89)
    want = dict(seeded.raw(
        "SELECT SpanAttributes['gen_ai.agent.name'], sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) "
        "+ toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) FROM {otel:Identifier}.otel_traces "
        f"WHERE {AGENT} AND SpanAttributes['enduser.id'] = 'alice' AND Timestamp >= {{s:DateTime64(3)}} GROUP BY 1",
        s=ts(since)))
    assert {a["agent"]: a["tokens"] for a in d["agents"]} == want
    assert d["recommendation"]["favourites"][0] == max(want, key=want.get)
    # Billing Agent is well rated, but only bob runs it: recommending it would tell alice what bob uses.
    assert [r["agent"] for r in d["recommendation"]["try_next"]] == []
    html = ops.get("/users/alice").get_data(as_text=True)
    assert "Near quota:" in html and "Billing Agent" not in html and "<svg" in html
    bob = ops.get("/users/bob").get_data(as_text=True)
    assert "Quota exceeded:" in bob
    assert ops.get("/users/nobody-at-all").status_code == 404


def test_a_users_figures_summed_from_their_days_match_the_raw_spans_and_the_period_queries(ops, seeded, h):
    # A user's page sums its 30-day figures from the daily rows it draws (dashboard.user_figures_of)
    # instead of running the period's two total queries: both ways, and the raw spans, agree.
    from swarmlens.reports import common as rc
    from swarmlens.reports import dashboard

    start, end = period_bounds("30d", seeded.today)
    period = rc.Period("30d", "Last 30 days", start, end)
    unpriced = 0
    for user in sorted(seeded.tasks_by_user) + ["nobody-at-all"]:
        f = dashboard.user_figures_of(
            rc.q(seeded.client, seeded.config, "task_daily", start=start, end=end, user=user),
            rc.q(seeded.client, seeded.config, "cost_daily", start=start, end=end, user=user))
        two_queries = dashboard.figures(seeded.client, seeded.config, period, user)
        assert {k: v for k, v in f.items() if k != "cost_usd"} == \
            {k: v for k, v in two_queries.items() if k != "cost_usd"}, user
        assert f["cost_usd"] == pytest.approx(two_queries["cost_usd"], rel=1e-12, abs=1e-12)
        want = raw_tasks(seeded, start, end, user)
        assert (f["tasks"], f["tokens"], f["active_users"]) == (want["tasks"], want["tokens"], want["active_users"])
        assert f["cost_usd"] == pytest.approx(raw_cost(seeded, h, start, end, user).get("", 0.0), rel=1e-9, abs=1e-12)
        unpriced += f["unpriced_tokens"]
        if user in ("alice", "bob"):
            page = ops.get(f"/users/{user}?format=json").get_json()
            assert page["figures_30d"]["tasks"] == want["tasks"]
            assert page["figures_30d"]["cost_usd"] == pytest.approx(f["cost_usd"], rel=1e-12)
    assert unpriced > 0  # the seed's unpriced model is counted on its user's figures


def test_a_users_quota_from_their_account_and_days_is_what_quota_status_says(ops, seeded):
    # A user's page builds the month's quota status from the user's account row (user_plan) and the
    # daily rows it draws, instead of quota_status: for every user, configured or not, with tasks
    # or not, and one nobody knows, both give the same row.
    from swarmlens.reports import common as rc
    from swarmlens.reports import users as report

    month = rc.this_month()
    configured = [r[0] for r in seeded.client.query(
        f"SELECT user_id FROM {seeded.config['SWARMLENS_DATABASE']}.users FINAL").result_rows]
    assert "dave" in configured and "erin" not in configured and "erin" in seeded.tasks_by_user
    for user in sorted(set(seeded.tasks_by_user) | set(configured)) + ["nobody-at-all"]:
        want = report.quota_status(seeded.client, seeded.config, user)
        got = report.user_quota_of(
            user, month, rc.q(seeded.client, seeded.config, "user_plan", user=user),
            # rows from before the month too, as the page draws them (the 30 days of its chart)
            rc.q(seeded.client, seeded.config, "task_daily", start=month.start - timedelta(days=40), end=month.end,
                 user=user),
            rc.q(seeded.client, seeded.config, "cost_daily", start=month.start - timedelta(days=40), end=month.end,
                 user=user))
        assert got.pop("cost_usd") == pytest.approx(want.pop("cost_usd"), rel=1e-12, abs=1e-12), user
        assert got == want, user
    page = ops.get("/users/alice?format=json").get_json()
    assert page["quota"]["level"] == "warn" and page["quota"]["tokens"] == report.quota_status(
        seeded.client, seeded.config, "alice")["tokens"]


def test_task_page_shows_waterfall_path_and_cost_per_agent(ops, seeded, h):
    task = seeded.task_ids["handoff"]
    d = ops.get(f"/tasks/{task}?format=json").get_json()
    assert d["handoff_path"] == ["Triage Agent", "Refunds Agent", "Triage Agent"]
    spans = seeded.raw("SELECT SpanName, toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']), "
                       "toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']), "
                       "SpanAttributes['gen_ai.request.model'], SpanAttributes['gen_ai.agent.name'] "
                       "FROM {otel:Identifier}.otel_traces WHERE TraceId = {t:String}", t=task)
    assert len(d["waterfall"]) == len(spans)
    kinds = [r["kind"] for r in d["waterfall"]]
    assert kinds.count("agent") == 3 and kinds.count("handoff") == 2 and kinds[0] == "task"
    assert all(r["offset_ms"] >= 0 and r["duration_ms"] > 0 for r in d["waterfall"])
    per_agent = {}
    for name, tin, tout, model, agent in spans:
        if name.startswith("invoke_agent"):
            pin, pout = h.PRICES.get(model, (0, 0))
            a = per_agent.setdefault(agent, [0, 0.0])
            a[0] += tin + tout
            a[1] += (tin * pin + tout * pout) / 1e6
    assert {a["agent"]: a["tokens"] for a in d["agents"]} == {k: v[0] for k, v in per_agent.items()}
    for a in d["agents"]:
        assert a["cost_usd"] == pytest.approx(per_agent[a["agent"]][1])
    root = [s for s in spans if s[0] == "invoke_workflow swarm"]
    assert d["task"]["total_tokens"] == sum(s[1] + s[2] for s in spans if s[0].startswith("invoke_agent"))
    assert len(root) == 1
    html = ops.get(f"/tasks/{task}").get_data(as_text=True)
    assert "Waterfall" in html and "transfer_to_Refunds Agent" in html and "Refunds Agent" in html
    assert "took too long" in html  # the feedback comment


def test_task_page_pretty_prints_json_and_shows_errors(ops, seeded):
    html = ops.get(f"/tasks/{seeded.task_ids['json']}").get_data(as_text=True)
    assert '{\n  &#34;order&#34;: 42,\n  &#34;items&#34;: [\n    &#34;kettle&#34;' in html
    err = ops.get(f"/tasks/{seeded.task_ids['error']}?format=json").get_json()
    assert err["task"]["status"] == "error" and err["task"]["error_type"] == "APITimeoutError"
    assert any(r["error"] for r in err["waterfall"])
    assert ops.get("/tasks/ffffffffffffffffffffffffffffffff").status_code == 404
    assert ops.get("/tasks/not a task id").status_code == 404


@pytest.mark.parametrize("kind", ["weekly", "monthly"])
def test_usage_reports_match_the_raw_spans(ops, seeded, h, kind):
    d = ops.get(f"/reports/{kind}?format=json").get_json()
    start, end = date.fromisoformat(d["period"]["start"]), date.fromisoformat(d["period"]["end_exclusive"])
    want = raw_tasks(seeded, start, end)
    totals = {t["key"]: t for t in d["totals"]}
    assert totals["tasks"]["current"] == want["tasks"] and totals["tokens"]["current"] == want["tokens"]
    assert totals["avg_tokens_per_task"]["current"] == pytest.approx(want["tokens"] / want["tasks"])
    # This week or month is still running: it is compared with as many days of the one before.
    pstart, pend = (date.fromisoformat(d["previous_period"][k]) for k in ("start", "end_exclusive"))
    assert (pend - pstart).days == min((seeded.today - start).days + 1, (start - pstart).days)
    prev = raw_tasks(seeded, pstart, pend)
    assert totals["tokens"]["previous"] == prev["tokens"]
    assert totals["tokens"]["change"] == pytest.approx((want["tokens"] - prev["tokens"]) / prev["tokens"])
    # By user at the task level, by agent at the agent level, by model at the chat level.
    users = dict(seeded.raw(f"SELECT SpanAttributes['enduser.id'], sum({TOK_IN} + {TOK_OUT}) FROM "
                            f"{{otel:Identifier}}.otel_traces WHERE {ROOT} AND Timestamp >= {{s:DateTime64(3)}} "
                            "AND Timestamp < {e:DateTime64(3)} GROUP BY 1", s=ts(start), e=ts(end)))
    assert {u["user_id"]: u["tokens"] for u in d["users"]} == users
    models = seeded.raw(
        "SELECT SpanAttributes['gen_ai.request.model'], count(), sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])), "
        "sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) FROM {otel:Identifier}.otel_traces "
        "WHERE startsWith(SpanName, 'chat') AND Timestamp >= {s:DateTime64(3)} AND Timestamp < {e:DateTime64(3)} "
        "GROUP BY 1", s=ts(start), e=ts(end))
    got = {m["model"]: m for m in d["models"]}
    for model, calls, tin, tout in models:
        pin, pout = h.PRICES.get(model, (0, 0))
        assert (got[model]["calls"], got[model]["input_tokens"], got[model]["output_tokens"]) == (calls, tin, tout)
        assert got[model]["cost_usd"] == pytest.approx((tin * pin + tout * pout) / 1e6)
    agent_cost = raw_cost(seeded, h, start, end, group="SpanAttributes['gen_ai.agent.name']")
    for a in d["agents"]:
        assert a["cost_usd"] == pytest.approx(agent_cost[a["agent"]])
    # Each row's previous tokens are what the previous period's own report says of that row.
    before = ops.get(f"/reports/custom?from={pstart}&to={pend - timedelta(days=1)}&format=json").get_json()
    for table, key in (("users", "user_id"), ("agents", "agent"), ("models", "model")):
        was = {r[key]: r["tokens"] for r in before[table]}
        assert {r[key]: r["previous_tokens"] for r in d[table]} == {r[key]: was.get(r[key], 0) for r in d[table]}
    html = ops.get(f"/reports/{kind}").get_data(as_text=True)
    assert "By model" in html and f"{want['tokens']:,}" in html


def test_a_report_page_lists_the_top_users_and_its_csv_all(ops, monkeypatch):
    from swarmlens.reports import usage

    every = ops.get("/reports/custom?format=json").get_json()["users"]
    assert len(every) >= 3
    monkeypatch.setattr(usage, "USERS_ON_PAGE", 2)
    html = ops.get("/reports/custom").get_data(as_text=True)
    top = sorted(every, key=lambda u: (-u["tokens"], u["user_id"]))
    assert f"The 2 users with the most tokens of {len(every)}" in html
    assert all(f">{u['user_id']}</a>" in html for u in top[:2])
    assert not any(f">{u['user_id']}</a>" in html for u in top[2:])
    csv_text = ops.get("/reports/custom.csv?table=users").get_data(as_text=True)
    assert all(u["user_id"] in csv_text for u in every)


def test_reports_navigate_to_named_periods_and_reject_bad_ones(ops, seeded):
    d = ops.get("/reports/monthly?month=2026-01&format=json").get_json()
    assert d["period"]["start"] == "2026-01-01" and d["previous_period"]["start"] == "2025-12-01"
    w = ops.get("/reports/weekly?week=2026-W10&format=json").get_json()
    assert w["period"]["start"] == "2026-03-02" and w["previous_period"]["start"] == "2026-02-23"
    assert ops.get("/reports/monthly?month=March").status_code == 400
    assert ops.get("/reports/weekly?week=2026-W99").status_code == 400
    assert ops.get("/reports/").status_code == 302


def test_agents_ranking_graph_and_optimization_guide(ops, seeded):
    d = ops.get("/agents?format=json").get_json()
    start, end = period_bounds("30d", seeded.today)
    per_task = seeded.raw(
        "SELECT agent, avg(t), quantileExactInclusive(0.95)(t), count() FROM (SELECT SpanAttributes['gen_ai.agent.name'] AS agent, "
        "TraceId, sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) + "
        "toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS t FROM {otel:Identifier}.otel_traces "
        f"WHERE {AGENT} AND Timestamp >= {{s:DateTime64(3)}} AND Timestamp < {{e:DateTime64(3)}} GROUP BY 1, 2) GROUP BY agent",
        s=ts(start), e=ts(end))
    got = {a["agent"]: a for a in d["agents"]}
    for agent, avg, p95, tasks in per_task:
        assert got[agent]["tasks"] == tasks
        assert got[agent]["avg_tokens_per_task"] == pytest.approx(avg)
        assert got[agent]["p95_tokens_per_task"] == pytest.approx(p95)
    assert [a["tasks"] for a in d["agents"]] == sorted((a["tasks"] for a in d["agents"]), reverse=True)
    assert got["Billing Agent"]["score"] == 1.0 and got["Billing Agent"]["votes"] == 2
    handoffs = {(e["from_agent"], e["to_agent"]): e["handoffs"] for e in d["handoffs"]}
    raw = dict(((f, t), n) for f, t, n in seeded.raw(
        "SELECT SpanAttributes['swarm.handoff.from'], SpanAttributes['gen_ai.agent.name'], count() FROM "
        f"{{otel:Identifier}}.otel_traces WHERE {AGENT} AND SpanAttributes['swarm.handoff.from'] != '' "
        "AND Timestamp >= {s:DateTime64(3)} AND Timestamp < {e:DateTime64(3)} GROUP BY 1, 2", s=ts(start), e=ts(end)))
    assert handoffs == raw and ("Refunds Agent", "Triage Agent") in handoffs
    assert "Sales Agent" in [r["agent"] for r in d["rising"]]
    outliers = {(o["agent"], o["task_id"]) for o in d["outliers"]}
    assert ("Sales Agent", seeded.task_ids["outlier"]) in outliers
    assert all(o["tokens"] > o["p95_tokens_per_task"] for o in d["outliers"])
    by_score = ops.get("/agents?sort=score&format=json").get_json()["agents"]
    assert by_score[0]["agent"] == "Billing Agent"
    html = ops.get("/agents").get_data(as_text=True)
    assert "Handoff graph" in html and 'marker-end="url(#arrowhead)"' in html
    assert f'/tasks/{seeded.task_ids["outlier"]}' in html
    assert ops.get("/agents?sort=name").status_code == 400


def test_feedback_page_lists_latest_votes(ops, seeded):
    d = ops.get("/feedback?format=json").get_json()
    assert {(f["voter"], f["vote"]) for f in d["feedback"]} >= {("bob", 1), ("carol", 1), ("bob", -1)}
    assert d["summary"]["down"] >= 1
    assert "took too long" in ops.get("/feedback").get_data(as_text=True)
    assert len(ops.get("/feedback?vote=down&format=json").get_json()["feedback"]) == d["summary"]["down"]


def test_admin_pages_render(ops):
    for path, text in (("/admin/plans", "Team"), ("/admin/prices", "gpt-4o-mini"), ("/admin/tokens", "alice app"),
                       ("/admin/quotas", "bob")):
        r = ops.get(path)
        assert r.status_code == 200 and text in r.get_data(as_text=True), path
        assert ops.get(path + "?format=json").status_code == 200
    q = ops.get("/admin/quotas?format=json").get_json()
    assert [u["user_id"] for u in q["over"]] == ["bob"]
    bob = q["over"][0]
    assert bob["overage_tokens"] == bob["tokens"] - bob["quota"] > 0
    assert [u["user_id"] for u in q["warn"]] == ["alice"]
    tokens = ops.get("/admin/tokens?format=json").get_json()["tokens"]
    assert all(len(t["token_hash"]) == 64 and "slk_" not in str(t) for t in tokens)


def test_every_page_serves_json_with_the_same_dict(ops, seeded):
    for path in ("/", "/users", "/users/carol", "/search", f"/tasks/{seeded.task_ids['json']}", "/reports/monthly",
                 "/reports/weekly", "/agents", "/feedback", "/admin/plans", "/admin/quotas"):
        r = ops.get(path + ("&" if "?" in path else "?") + "format=json")
        assert r.status_code == 200 and r.is_json, path
    assert ops.get("/users?format=xml").status_code == 400


def test_all_user_twins_give_the_figures_of_their_per_user_query_files(seeded):
    """Reports of every user read the all-user rollups (schema 0007); each twin must return what its
    per-user query file returns for user = '' (cost sums may differ in the last float digits), and the
    search of all users finds what the search of the tasks table finds."""
    from swarmlens.reports import common
    from swarmlens.store.client import query_file

    start, end = period_bounds("30d", seeded.today)
    for name in common.ALL_USERS:
        dated = name == "usage_by_model"  # its period is given as timestamps
        params = {"start": ts(start) if dated else start, "end": ts(end) if dated else end, "user": ""}
        if name == "usage_by_agent":
            params["limit"] = 1000
        if name == "search_tasks":
            params.update(start=ts(start), end=ts(end), q="", agent="", status="", limit=1000, has_cursor=0,
                          cursor_time=ts(start), cursor_id="", **NO_PREFIXES)
        if name == "search_count":
            params.update(start=ts(start), end=ts(end), q="", agent="", status="", cap=100000, **NO_PREFIXES)
        direct = list(query_file(seeded.client, name, params, config=seeded.config).named_results())
        routed = common.q(seeded.client, seeded.config, name, **params)
        assert direct, name
        assert len(routed) == len(direct), name
        for a, b in zip(routed, direct):
            assert a.keys() == b.keys(), name
            for k in a:
                assert a[k] == (pytest.approx(b[k]) if isinstance(b[k], float) else b[k]), (name, k)
    # a keyword, and a keyword with the agent filter, find the same tasks in both tables
    for extra in ({"q": "refund"}, {"q": "REFUND", "agent": "Triage Agent"}, match_params("refun")):
        params = {"start": ts(start - timedelta(days=60)), "end": ts(end), "user": "", "q": "", "agent": "",
                  "status": "", "limit": 1000, "has_cursor": 0, "cursor_time": ts(start), "cursor_id": "",
                  **NO_PREFIXES, **extra}
        direct = list(query_file(seeded.client, "search_tasks", params, config=seeded.config).named_results())
        assert direct, extra
        assert common.q(seeded.client, seeded.config, "search_tasks", **params) == direct, extra
