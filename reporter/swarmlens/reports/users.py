"""The users list (this month's usage against each quota) and a user's page: history by keyset,
usage chart, most-used agents, a recommendation and the quota status."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from swarmlens.reports import dashboard
from swarmlens.reports.common import Period, q, quota_rows, ratio, this_month, today

SORTS = {
    "user": lambda r: r["user_id"],
    "plan": lambda r: (r["plan"] or "~", r["user_id"]),
    "tasks": lambda r: r["tasks"] or 0,
    "tokens": lambda r: r["tokens"] or 0,
    "cost": lambda r: r["cost_usd"] or 0,
    "quota": lambda r: r["quota"] or 0,
    "percent": lambda r: r["percent"] if r["percent"] is not None else -1,
}

# An agent counts as well rated with at least this many votes and this share of thumbs-up.
WELL_RATED_MIN_VOTES = 2
WELL_RATED_MIN_SHARE = 0.6


def users_list(client, config, sort: str = "tokens", direction: str = "desc") -> dict[str, Any]:
    month = this_month()
    rows = quota_rows(client, config, month)
    rows.sort(key=SORTS[sort], reverse=direction == "desc")
    return {"month": month.as_dict(), "sort": sort, "dir": direction, "sorts": list(SORTS), "users": rows,
            "totals": {"users": len(rows), "tasks": sum(r["tasks"] or 0 for r in rows),
                       "tokens": sum(r["tokens"] or 0 for r in rows),
                       "cost_usd": sum(r["cost_usd"] or 0 for r in rows),
                       "over": sum(1 for r in rows if r["level"] == "over"),
                       "warn": sum(1 for r in rows if r["level"] == "warn")}}


def quota_status(client, config, user_id: str) -> dict[str, Any]:
    month = this_month()
    rows = quota_rows(client, config, month, user=user_id)
    row = rows[0] if rows else {"user_id": user_id, "display_name": "", "email": "", "plan": "", "plan_name": "",
                                "quota": 0, "warn_at_percent": 80, "tasks": 0, "tokens": 0, "errors": 0,
                                "cost_usd": 0.0, "percent": None, "level": "none", "overage_tokens": 0}
    messages = {
        "over": f"{user_id} has used {row['percent']}% of the monthly quota: over the limit.",
        "warn": f"{user_id} has used {row['percent']}% of the monthly quota (warning at {row['warn_at_percent']}%).",
    }
    row["message"] = messages.get(row["level"], "")
    row["month"] = month.as_dict()
    return row


def agent_ratings(client, config, period: Period) -> dict[str, dict[str, Any]]:
    out = {}
    for r in q(client, config, "agent_ratings", start=period.start_ts, end=period.end_ts):
        r["score"] = ratio(r["up"], r["votes"])
        out[r["agent"]] = r
    return out


def recommendation(client, config, user_id: str, used: list[dict[str, Any]]) -> dict[str, Any]:
    """Their most-used agents, and well-rated agents (by everyone's feedback, last 90 days) they have
    not used."""
    d = today()
    window = Period("90d", "Last 90 days", d - timedelta(days=89), d + timedelta(days=1))
    ratings = agent_ratings(client, config, window)
    tried = {r["agent"] for r in used}
    untried = sorted((r for a, r in ratings.items()
                      if a not in tried and r["votes"] >= WELL_RATED_MIN_VOTES and r["score"] >= WELL_RATED_MIN_SHARE),
                     key=lambda r: (-r["score"], -r["votes"], r["agent"]))
    return {"favourites": [r["agent"] for r in used[:3]], "try_next": untried[:3],
            "rule": f"agents with at least {WELL_RATED_MIN_VOTES} votes and {int(WELL_RATED_MIN_SHARE * 100)}% "
                    f"thumbs-up in the last 90 days that this user has not used"}


def user_page(client, config, user_id: str, *, limit: int, cursor_params: dict[str, Any]) -> dict[str, Any]:
    d = today()
    chart_period = Period("30d", "Last 30 days", d - timedelta(days=29), d + timedelta(days=1))
    usage_window = Period("90d", "Last 90 days", d - timedelta(days=89), d + timedelta(days=1))
    tasks = q(client, config, "user_tasks", user=user_id, limit=limit + 1, **cursor_params)
    agents = q(client, config, "usage_by_agent", start=usage_window.start, end=usage_window.end, user=user_id,
               limit=20)
    return {
        "user_id": user_id,
        "quota": quota_status(client, config, user_id),
        "figures_30d": dashboard.figures(client, config, chart_period, user=user_id),
        "chart_period": chart_period.as_dict(),
        "daily": dashboard.daily(client, config, chart_period, user=user_id),
        "agents_period": usage_window.as_dict(),
        "agents": agents,
        "recommendation": recommendation(client, config, user_id, agents),
        "tasks": tasks,
    }
