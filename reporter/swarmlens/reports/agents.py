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
        "level": "task",
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


def build_scoped(client, config, period: Period, sort: str = "tasks", *, user: str = "", agent: str = "",
                 model: str = "") -> dict[str, Any]:
    """The ranking narrowed to a user, an agent and/or a model. Runs, tokens, errors and cost come from
    usage_daily (which knows all three); tasks and tokens per task from agent_tasks, which knows the
    user and the agent but not the model, so with a model filter the per-task columns stay empty.
    The handoff graph and the outliers keep only the chosen agent's; they are not split by user or
    model."""
    scope = {"user": user, "agent": agent, "model": model}
    calls = {
        "usage": lambda: q(client, config, "scope_by_agent", start=period.start, end=period.end, limit=100000, **scope),
        "handoffs": lambda: q(client, config, "handoff_graph", start=period.start_ts, end=period.end_ts),
        "outliers": lambda: q(client, config, "agent_outliers", start=period.start_ts, end=period.end_ts, limit=1000),
    }
    if not model:
        calls["per_task"] = lambda: q(client, config, "scope_agent_tasks", start=period.start_ts, end=period.end_ts,
                                      user=user, agent=agent)
    res = parallel(**calls)
    per_task = {r["agent"]: r for r in res.get("per_task", [])}
    rows = []
    for u in res["usage"]:
        t = per_task.get(u["agent"])
        rows.append({
            "agent": u["agent"], "runs": int(u["runs"]), "tokens": int(u["tokens"]),
            "input_tokens": int(u["input_tokens"]), "output_tokens": int(u["output_tokens"]),
            "errors": int(u["errors"]), "users": int(u["users"]), "error_rate": ratio(u["errors"], u["runs"]),
            "cost_usd": float(u["cost_usd"] or 0.0),
            "tasks": int(t["tasks"]) if t else None,
            "avg_tokens_per_task": float(t["avg_tokens_per_task"]) if t else None,
            "p95_tokens_per_task": float(t["p95_tokens_per_task"]) if t else None,
            "score": None, "votes": 0, "up": 0, "down": 0, "avg_change": None, "previous_avg_tokens_per_task": None,
        })
    per_task_sorts = ("tasks", "avg_tokens_per_task", "p95_tokens_per_task")
    key = sort if sort in ("tokens", "cost_usd", "error_rate") + (() if model else per_task_sorts) else "tokens"
    rows.sort(key=lambda r: (r[key] is None, -(r[key] or 0), r["agent"]))
    handoffs = [h for h in res["handoffs"] if not agent or agent in (h["from_agent"], h["to_agent"])]
    outliers = [o for o in res["outliers"] if (not agent or o["agent"] == agent) and (not user or o["user_id"] == user)]
    return {
        "level": "agent",
        "period": period.as_dict(),
        "previous_period": period.previous().as_dict(),
        "sort": key,
        "sorts": SORTS,
        "agents": rows,
        "handoffs": handoffs,
        "rising": [],
        "rise_threshold": RISE_THRESHOLD,
        "outliers": outliers[:25],
    }
