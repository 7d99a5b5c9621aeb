"""The users list (this month's usage against each quota) and a user's page: history by keyset,
usage chart, most-used agents, a recommendation and the quota status."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from swarmlens.reports import dashboard
from swarmlens.reports.common import Period, parallel, q, quota_rows, ratio, this_month, today, with_quota

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
# An agent is recommended only when at least this many users ran it in the window: an agent only
# one or two other people use would tell the reader what those people do.
RECOMMEND_MIN_USERS = 3


# Rows of the users list per page. Rendering is the cost of that page, not the query: 10,000 rows
# were 2.5 MB of HTML and about 90% of its 400 ms.
USERS_PER_PAGE = 100


def users_list(client, config, sort: str = "tokens", direction: str = "desc", page: int = 1,
               per_page: int = USERS_PER_PAGE) -> dict[str, Any]:
    """One page of this month's users, sorted; the totals are over every user."""
    month = this_month()
    rows = quota_rows(client, config, month)
    rows.sort(key=SORTS[sort], reverse=direction == "desc")
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * per_page:page * per_page]
    return {"month": month.as_dict(), "sort": sort, "dir": direction, "sorts": list(SORTS), "users": shown,
            "page": page, "pages": pages, "per_page": per_page,
            "totals": {"users": len(rows), "tasks": sum(r["tasks"] or 0 for r in rows),
                       "tokens": sum(r["tokens"] or 0 for r in rows),
                       "cost_usd": sum(r["cost_usd"] or 0 for r in rows),
                       "over": sum(1 for r in rows if r["level"] == "over"),
                       "warn": sum(1 for r in rows if r["level"] == "warn")}}


def within(rows: list[dict[str, Any]], period: Period) -> list[dict[str, Any]]:
    """The rows (with a ``day``) of the days of ``period``."""
    return [r for r in rows if period.start <= r["day"] < period.end]


def user_quota_of(user_id: str, month: Period, account: list[dict[str, Any]], days: list[dict[str, Any]],
                  costs: list[dict[str, Any]]) -> dict[str, Any]:
    """What quota_status says of one user, from their user_plan row and their task_daily and
    cost_daily rows (which may span more than the month): a row when the user is configured or has
    tasks in the month, with the month's tasks, tokens, errors and cost (summed as a user's figures
    are), and the plan's defaults when either is missing, as quota_status's joins give."""
    month_days = within(days, month)
    rows = []
    if account or month_days:
        a = account[0] if account else {}
        f = dashboard.user_figures_of(month_days, within(costs, month))
        rows.append(with_quota({
            "user_id": user_id, "display_name": a.get("display_name", ""), "email": a.get("email", ""),
            "plan": a.get("plan", ""), "plan_name": a.get("plan_name") or "", "quota": int(a.get("quota") or 0),
            "warn_at_percent": int(a.get("warn_at_percent") or 0),
            "tasks": f["tasks"], "tokens": f["tokens"], "errors": f["errors"], "cost_usd": f["cost_usd"]}))
    return quota_status_of(user_id, month, rows)


def quota_status(client, config, user_id: str) -> dict[str, Any]:
    month = this_month()
    return quota_status_of(user_id, month, quota_rows(client, config, month, user=user_id))


def quota_status_of(user_id: str, month: Period, rows: list[dict[str, Any]]) -> dict[str, Any]:
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
    return ratings_of(q(client, config, "agent_ratings", start=period.start_ts, end=period.end_ts))


def ratings_of(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rows:
        r["score"] = ratio(r["up"], r["votes"])
        out[r["agent"]] = r
    return out


def recommendation_window() -> Period:
    d = today()
    return Period("90d", "Last 90 days", d - timedelta(days=89), d + timedelta(days=1))


def widely_used_agents(rows: list[dict[str, Any]]) -> set[str]:
    """Agents of usage_by_agent rows (all users) that RECOMMEND_MIN_USERS users or more ran."""
    return {r["agent"] for r in rows if int(r.get("users") or 0) >= RECOMMEND_MIN_USERS}


def recommendation(client, config, user_id: str, used: list[dict[str, Any]],
                   ratings: dict[str, dict[str, Any]] | None = None,
                   widely_used: set[str] | None = None) -> dict[str, Any]:
    """Their most-used agents, and well-rated agents (by everyone's feedback, last 90 days) they have
    not used and that at least RECOMMEND_MIN_USERS users ran. ``ratings`` (agent_ratings of
    recommendation_window()) and ``widely_used`` (widely_used_agents) when already queried."""
    window = recommendation_window()
    if ratings is None:
        ratings = agent_ratings(client, config, window)
    if widely_used is None:
        widely_used = widely_used_agents(q(client, config, "usage_by_agent", start=window.start, end=window.end,
                                           user="", limit=10_000))
    tried = {r["agent"] for r in used}
    untried = sorted((r for a, r in ratings.items()
                      if a not in tried and a in widely_used and r["votes"] >= WELL_RATED_MIN_VOTES
                      and r["score"] >= WELL_RATED_MIN_SHARE),
                     key=lambda r: (-r["score"], -r["votes"], r["agent"]))
    return {"favourites": [r["agent"] for r in used[:3]], "try_next": untried[:3],
            "rule": f"agents with at least {WELL_RATED_MIN_VOTES} votes and {int(WELL_RATED_MIN_SHARE * 100)}% "
                    f"thumbs-up in the last 90 days, run by at least {RECOMMEND_MIN_USERS} users, that this user has not used"}


def user_page(client, config, user_id: str, *, limit: int, cursor_params: dict[str, Any]) -> dict[str, Any]:
    d = today()
    chart_period = Period("30d", "Last 30 days", d - timedelta(days=29), d + timedelta(days=1))
    usage_window = Period("90d", "Last 90 days", d - timedelta(days=89), d + timedelta(days=1))
    month = this_month()
    ratings_window = recommendation_window()
    # The days of the chart and of the month at once: the 30 days' figures and the month's quota
    # are summed from them (the account and its plan, which rarely change, come apart).
    days = Period("days", "", min(chart_period.start, month.start), max(chart_period.end, month.end))
    # Every query of the page at once (eight).
    r = parallel(
        tasks=lambda: q(client, config, "user_tasks", user=user_id, limit=limit + 1, **cursor_params),
        agents=lambda: q(client, config, "usage_by_agent", start=usage_window.start, end=usage_window.end,
                         user=user_id, limit=20),
        account=lambda: q(client, config, "user_plan", user=user_id),
        ratings=lambda: q(client, config, "agent_ratings", start=ratings_window.start_ts, end=ratings_window.end_ts),
        all_agents=lambda: q(client, config, "usage_by_agent", start=ratings_window.start, end=ratings_window.end,
                             user="", limit=10_000),
        **dashboard.daily_calls(client, config, days, user=user_id),
    )
    return {
        "user_id": user_id,
        "quota": user_quota_of(user_id, month, r["account"], r["days"], r["costs"]),
        "figures_30d": dashboard.user_figures_of(within(r["days"], chart_period), within(r["costs"], chart_period)),
        "chart_period": chart_period.as_dict(),
        "daily": dashboard.daily_of(chart_period, r["days"], r["costs"]),
        "agents_period": usage_window.as_dict(),
        "agents": r["agents"],
        "recommendation": recommendation(client, config, user_id, r["agents"], ratings_of(r["ratings"]),
                                         widely_used_agents(r["all_agents"])),
        "tasks": r["tasks"],
    }


def user_month_context(client, config, user_id: str, month: Period) -> dict[str, Any]:
    """What a user's monthly report (the PDF downloaded from the user page and the one mailed on the
    1st) shows: every figure of that month, its quota included. One builder for both, so the same
    user and month give the same document."""
    r = parallel(
        quota=lambda: quota_rows(client, config, month, user=user_id),
        **dashboard.daily_calls(client, config, month, user=user_id),
        agents=lambda: q(client, config, "usage_by_agent", start=month.start, end=month.end, user=user_id, limit=15),
        models=lambda: q(client, config, "usage_by_model", start=month.start_ts, end=month.end_ts, user=user_id),
    )
    return {"user_id": user_id, "month": month.as_dict(),
            "quota": quota_status_of(user_id, month, r["quota"]),
            "figures": dashboard.user_figures_of(r["days"], r["costs"]),
            "daily": dashboard.daily_of(month, r["days"], r["costs"]), "agents": r["agents"], "models": r["models"]}
