"""The dashboard: a period's headline figures, the daily trend, top agents and users, and the users
near or over their monthly quota.

Counting rule: tasks, tokens, errors and active users come from the task level (tasks_daily); cost
and the top agents from the agent level (usage_daily x prices now), the only level that knows the
model and the user together.
"""

from __future__ import annotations

from typing import Any

from swarmlens.reports.common import (DASHBOARD_PERIODS, Period, change, fill_days, parallel, q, q1, quota_rows,
                                      ratio, this_month)


def figures(client, config, period: Period, user: str = "") -> dict[str, Any]:
    t = q1(client, config, "task_totals", start=period.start, end=period.end, user=user)
    c = q1(client, config, "cost_total", start=period.start, end=period.end, user=user)
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


def daily(client, config, period: Period, user: str = "") -> list[dict[str, Any]]:
    rows = fill_days(period, q(client, config, "task_daily", start=period.start, end=period.end, user=user),
                     ["tasks", "tokens", "errors", "active_users"])
    costs = {r["day"]: float(r["cost_usd"] or 0) for r in
             q(client, config, "cost_daily", start=period.start, end=period.end, user=user)}
    for r in rows:
        r["cost_usd"] = costs.get(r["day"], 0.0)
    return rows


def build(client, config, period: Period) -> dict[str, Any]:
    previous_period = period.previous()
    month = this_month()
    r = parallel(
        current=lambda: figures(client, config, period),
        previous=lambda: figures(client, config, previous_period),
        daily=lambda: daily(client, config, period),
        top_agents=lambda: q(client, config, "usage_by_agent", start=period.start, end=period.end, user="", limit=10),
        top_users=lambda: q(client, config, "tasks_by_user", start=period.start, end=period.end, limit=10),
        quota=lambda: quota_rows(client, config, month),
        unpriced=lambda: q(client, config, "unpriced_models", start=period.start, end=period.end),
    )
    current, previous = r["current"], r["previous"]
    quota = [row for row in r["quota"] if row["level"] in ("warn", "over")]
    quota.sort(key=lambda row: -(row["percent"] or 0))
    return {
        "period": period.as_dict(),
        "periods": DASHBOARD_PERIODS,
        "previous_period": previous_period.as_dict(),
        "figures": current,
        "previous_figures": previous,
        "changes": {k: change(current[k], previous[k]) for k in ("tasks", "tokens", "cost_usd", "active_users",
                                                                 "error_rate")},
        "daily": r["daily"],
        "top_agents": r["top_agents"],
        "top_users": r["top_users"],
        "quota_month": month.as_dict(),
        "users_near_quota": quota,
        "unpriced_models": r["unpriced"],
    }
