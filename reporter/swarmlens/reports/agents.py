"""Agents: ranking (tasks, tokens, average and p95 tokens per task, error rate, feedback), the
handoff graph, and an optimization guide (tokens per task rising; outlier tasks above p95).

The ranking and the outliers read agent_tasks (an agent's runs and tokens per task and day, schema
0007) with the distinct users of agent_daily, the handoff graph reads handoffs_daily, the costs
agent_model_daily: none of them reads a period of agent runs."""

from __future__ import annotations

from typing import Any

from swarmlens.reports.common import Period, change, parallel, q, ratio

SORTS = ("tasks", "tokens", "avg_tokens_per_task", "p95_tokens_per_task", "error_rate", "score", "cost_usd")
# A rise in average tokens per task at least this large is listed in the optimization guide.
RISE_THRESHOLD = 0.10


def ranking_calls(client, config, period: Period) -> dict[str, Any]:
    """The three queries of a ranking (agent_tasks and agent_daily; costs from agent_model_daily;
    ratings from feedback), as calls for parallel(); ranking_of() joins them."""
    return {
        "ranking": lambda: q(client, config, "agents_ranking", start=period.start_ts, end=period.end_ts, detail=1),
        "costs": lambda: q(client, config, "cost_by_agent_all", start=period.start, end=period.end, limit=100000),
        "ratings": lambda: q(client, config, "agent_ratings", start=period.start_ts, end=period.end_ts),
    }


def ranking_of(rows: list[dict[str, Any]], costs: list[dict[str, Any]],
               ratings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cost = {r["agent"]: r["cost_usd"] for r in costs}
    rating_of = {r["agent"]: r for r in ratings}
    for r in rows:
        rating = rating_of.get(r["agent"], {})
        r["error_rate"] = ratio(r["errors"], r["runs"])
        r["avg_tokens_per_task"] = float(r["avg_tokens_per_task"] or 0)
        r["p95_tokens_per_task"] = float(r["p95_tokens_per_task"] or 0)
        r["up"], r["down"] = int(rating.get("up", 0)), int(rating.get("down", 0))
        r["votes"] = r["up"] + r["down"]
        r["score"] = ratio(r["up"], r["votes"]) if r["votes"] else None
        r["cost_usd"] = float(cost.get(r["agent"]) or 0.0)
    return rows


def build(client, config, period: Period, sort: str = "tasks") -> dict[str, Any]:
    prev = period.previous()
    # All six queries at once. Of the previous period only the average tokens per task is shown, so
    # its costs and ratings are not queried.
    res = parallel(
        **ranking_calls(client, config, period),
        before=lambda: q(client, config, "agents_ranking", start=prev.start_ts, end=prev.end_ts, detail=0),
        handoffs=lambda: q(client, config, "handoff_graph", start=period.start_ts, end=period.end_ts),
        outliers=lambda: q(client, config, "agent_outliers", start=period.start_ts, end=period.end_ts, limit=25),
    )
    rows = ranking_of(res["ranking"], res["costs"], res["ratings"])
    for b in res["before"]:
        b["avg_tokens_per_task"] = float(b["avg_tokens_per_task"] or 0)
    before = {b["agent"]: b for b in res["before"]}
    rising = []
    for r in rows:
        p = before.get(r["agent"])
        r["previous_avg_tokens_per_task"] = p["avg_tokens_per_task"] if p else None
        r["avg_change"] = change(r["avg_tokens_per_task"], p["avg_tokens_per_task"]) if p else None
        if r["avg_change"] is not None and r["avg_change"] >= RISE_THRESHOLD:
            rising.append({"agent": r["agent"], "avg_tokens_per_task": r["avg_tokens_per_task"],
                           "previous_avg_tokens_per_task": p["avg_tokens_per_task"], "change": r["avg_change"]})
    rows.sort(key=lambda r: (r[sort] is None, -(r[sort] or 0), r["agent"]))
    rising.sort(key=lambda r: -r["change"])
    return {
        "period": period.as_dict(),
        "previous_period": prev.as_dict(),
        "sort": sort,
        "sorts": SORTS,
        "agents": rows,
        "handoffs": res["handoffs"],
        "rising": rising,
        "rise_threshold": RISE_THRESHOLD,
        "outliers": res["outliers"],
    }
