"""The dashboard: a period's headline figures, the daily trend, top agents and users, and the users
near or over their monthly quota.

Counting rule: tasks, tokens, errors and active users come from the task level (tasks_daily); cost
and the top agents from the agent level (usage_daily x prices now), the only level that knows the
model and the user together.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from swarmlens.reports.common import (DASHBOARD_PERIODS, Period, change, fill_days, parallel, q, q1, quota_rows,
                                      rate_change, ratio, this_month)


def changes_of(current: dict[str, Any], previous: dict[str, Any], keys) -> dict[str, float | None]:
    """Changes against the previous period: relative for amounts, a difference for rates (shown in
    percentage points). A rate with no tasks before has nothing to compare with."""
    out = {}
    for k in keys:
        if k == "error_rate":
            out[k] = rate_change(current[k], previous[k]) if previous.get("tasks") else None
        else:
            out[k] = change(current[k], previous[k])
    return out


def figure_calls(client, config, period: Period, user: str = "") -> dict[str, Callable[[], Any]]:
    """The two queries behind figures(), as calls for parallel(); figures_of() turns their results
    into the figures. A page merges them with its other queries so that all run at once."""
    return {
        "totals": lambda: q1(client, config, "task_totals", start=period.start, end=period.end, user=user),
        "cost": lambda: q1(client, config, "cost_total", start=period.start, end=period.end, user=user),
    }


def figures_of(t: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    tasks = int(t.get("tasks") or 0)
    return {
        "tasks": tasks,
        "tokens": int(t.get("tokens") or 0),
        "input_tokens": int(t.get("input_tokens") or 0),
        "output_tokens": int(t.get("output_tokens") or 0),
        "errors": int(t.get("errors") or 0),
        "error_rate": ratio(t.get("errors"), tasks),
        "active_users": int(t.get("active_users") or 0),
        "avg_tokens_per_task": ratio(t.get("tokens"), tasks),
        "cost_usd": float(c.get("cost_usd") or 0.0),
        "unpriced_tokens": int(c.get("unpriced_tokens") or 0),
    }


def figures(client, config, period: Period, user: str = "") -> dict[str, Any]:
    r = parallel(**figure_calls(client, config, period, user))
    return figures_of(r["totals"], r["cost"])


def daily_calls(client, config, period: Period, user: str = "") -> dict[str, Callable[[], Any]]:
    """The two queries behind daily(), as calls for parallel(); daily_of() joins their results."""
    return {
        "days": lambda: q(client, config, "task_daily", start=period.start, end=period.end, user=user),
        "costs": lambda: q(client, config, "cost_daily", start=period.start, end=period.end, user=user),
    }


def user_figures_of(days: list[dict[str, Any]], costs: list[dict[str, Any]]) -> dict[str, Any]:
    """One user's figures of a period from the rows of daily_calls(..., user=...) (not the all-user
    rows): the same sums as figure_calls' two queries, which a user's page then need not run.
    The user was active when any day has a task (uniqExactIf of one user id); the cost is the
    correctly rounded sum of the days' costs."""
    tasks = sum(int(r["tasks"] or 0) for r in days)
    totals = {"tasks": tasks, "tokens": sum(int(r["tokens"] or 0) for r in days),
              "input_tokens": sum(int(r["input_tokens"] or 0) for r in days),
              "output_tokens": sum(int(r["output_tokens"] or 0) for r in days),
              "errors": sum(int(r["errors"] or 0) for r in days), "active_users": 1 if tasks > 0 else 0}
    cost = {"cost_usd": math.fsum(float(r["cost_usd"] or 0) for r in costs),
            "unpriced_tokens": sum(int(r["unpriced_tokens"] or 0) for r in costs)}
    return figures_of(totals, cost)


def daily_of(period: Period, days: list[dict[str, Any]], costs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = fill_days(period, days, ["tasks", "tokens", "errors", "active_users"])
    by_day = {r["day"]: float(r["cost_usd"] or 0) for r in costs}
    for r in rows:
        r["cost_usd"] = by_day.get(r["day"], 0.0)
    return rows


def daily(client, config, period: Period, user: str = "") -> list[dict[str, Any]]:
    r = parallel(**daily_calls(client, config, period, user))
    return daily_of(period, r["days"], r["costs"])


def prefixed(prefix: str, calls: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """Names calls ``prefix + name``, so that several sets of calls share one parallel()."""
    return {prefix + name: fn for name, fn in calls.items()}


def build(client, config, period: Period) -> dict[str, Any]:
    previous_period = period.previous()
    month = this_month()
    # Every query of the page at once (ten; the pool runs eight side by side).
    r = parallel(
        **prefixed("cur_", figure_calls(client, config, period)),
        **prefixed("prev_", figure_calls(client, config, previous_period)),
        **daily_calls(client, config, period),
        top_agents=lambda: q(client, config, "cost_by_agent_all", start=period.start, end=period.end, limit=10),
        top_users=lambda: q(client, config, "tasks_by_user", start=period.start, end=period.end, limit=10),
        quota=lambda: quota_rows(client, config, month, alerts_only=True, with_cost=False),
        unpriced=lambda: q(client, config, "unpriced_models", start=period.start, end=period.end),
        unattributed=lambda: q1(client, config, "unattributed_calls", start=period.start, end=period.end),
    )
    current = figures_of(r["cur_totals"], r["cur_cost"])
    previous = figures_of(r["prev_totals"], r["prev_cost"])
    quota = [row for row in r["quota"] if row["level"] in ("warn", "over")]
    quota.sort(key=lambda row: -(row["percent"] or 0))
    return {
        "level": "task",
        "period": period.as_dict(),
        "periods": DASHBOARD_PERIODS,
        "previous_period": previous_period.as_dict(),
        "figures": current,
        "previous_figures": previous,
        "changes": changes_of(current, previous, ("tasks", "tokens", "cost_usd", "active_users", "error_rate")),
        "daily": daily_of(period, r["days"], r["costs"]),
        "top_agents": r["top_agents"],
        "top_users": r["top_users"],
        "quota_month": month.as_dict(),
        "users_near_quota": quota,
        "unpriced_models": r["unpriced"],
        # model calls no user owns: in the all-user figures, on no user's page
        "unattributed_calls": int(r["unattributed"].get("calls") or 0),
        "unattributed_tokens": int(r["unattributed"].get("tokens") or 0),
    }


# ---------------------------------------------------------------------------------------------
# A dashboard narrowed to a user, an agent and/or a model. Tasks are counted per user but not per
# agent or model, so a narrowed dashboard counts at the agent level (usage_daily): agent runs, their
# tokens, errors, users and cost.


def scope_figures_of(t: dict[str, Any]) -> dict[str, Any]:
    runs = int(t.get("runs") or 0)
    return {
        "runs": runs,
        "tokens": int(t.get("tokens") or 0),
        "input_tokens": int(t.get("input_tokens") or 0),
        "output_tokens": int(t.get("output_tokens") or 0),
        "errors": int(t.get("errors") or 0),
        "error_rate": ratio(t.get("errors"), runs),
        "active_users": int(t.get("active_users") or 0),
        "cost_usd": float(t.get("cost_usd") or 0.0),
        "unpriced_tokens": int(t.get("unpriced_tokens") or 0),
    }


def build_scoped(client, config, period: Period, *, user: str = "", agent: str = "", model: str = "") -> dict[str, Any]:
    previous_period = period.previous()
    month = this_month()
    scope = {"user": user, "agent": agent, "model": model}
    r = parallel(
        cur=lambda: q1(client, config, "scope_totals", start=period.start, end=period.end, **scope),
        prev=lambda: q1(client, config, "scope_totals", start=previous_period.start, end=previous_period.end, **scope),
        days=lambda: q(client, config, "scope_daily", start=period.start, end=period.end, **scope),
        top_agents=lambda: q(client, config, "scope_by_agent", start=period.start, end=period.end, limit=10, **scope),
        top_users=lambda: q(client, config, "scope_by_user", start=period.start, end=period.end, limit=10, **scope),
        quota=lambda: quota_rows(client, config, month, user=user, alerts_only=True, with_cost=False),
    )
    current, previous = scope_figures_of(r["cur"]), scope_figures_of(r["prev"])
    changes = {k: change(current[k], previous[k]) for k in ("runs", "tokens", "cost_usd", "active_users")}
    changes["error_rate"] = rate_change(current["error_rate"], previous["error_rate"]) if previous["runs"] else None
    daily = fill_days(period, r["days"], ["runs", "tokens", "errors", "active_users", "cost_usd"])
    quota = [row for row in r["quota"] if row["level"] in ("warn", "over")]
    quota.sort(key=lambda row: -(row["percent"] or 0))
    return {
        "level": "agent",
        "period": period.as_dict(),
        "periods": DASHBOARD_PERIODS,
        "previous_period": previous_period.as_dict(),
        "figures": current,
        "previous_figures": previous,
        "changes": changes,
        "daily": daily,
        "top_agents": r["top_agents"],
        "top_users": r["top_users"],
        "quota_month": month.as_dict(),
        "users_near_quota": quota,
        "unpriced_models": [],
    }
