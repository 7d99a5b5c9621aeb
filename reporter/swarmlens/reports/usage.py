"""Weekly and monthly usage reports: totals and average tokens per task, breakdowns by user (task
level), agent (agent level) and model (chat level, from the model_daily rollup), each against the
previous period; every table exports as CSV and the whole report as PDF."""

from __future__ import annotations

from typing import Any

from swarmlens.reports import dashboard
from swarmlens.reports.common import Period, change, parallel, q

TABLES = ("totals", "daily", "users", "agents", "models")

# Users listed on the HTML page (the most tokens first); the JSON, CSV and PDF have all of them.
# Rendering a row per active user was two thirds of the monthly page's time (3,500 users: 880 KB).
USERS_ON_PAGE = 100

# CSV columns per table, in order; the names are the JSON keys.
CSV_COLUMNS = {
    "totals": ["figure", "current", "previous", "change"],
    "daily": ["day", "tasks", "tokens", "errors", "active_users", "cost_usd"],
    "users": ["user_id", "tasks", "input_tokens", "output_tokens", "tokens", "errors", "cost_usd",
              "previous_tokens", "change"],
    "agents": ["agent", "runs", "input_tokens", "output_tokens", "tokens", "errors", "users", "cost_usd",
               "previous_tokens", "change"],
    "models": ["model", "calls", "input_tokens", "output_tokens", "tokens", "errors", "usd_per_1m_input",
               "usd_per_1m_output", "cost_usd", "previous_tokens", "change"],
}

_FIGURES = [("tasks", "Tasks"), ("tokens", "Tokens"), ("input_tokens", "Input tokens"),
            ("output_tokens", "Output tokens"), ("avg_tokens_per_task", "Average tokens per task"),
            ("cost_usd", "Cost (USD)"), ("active_users", "Active users"), ("errors", "Failed tasks"),
            ("error_rate", "Error rate")]


def _with_previous(rows: list[dict[str, Any]], previous: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    before = {r[key]: r["tokens"] for r in previous}
    for r in rows:
        r["previous_tokens"] = int(before.get(r[key], 0))
        r["change"] = change(r["tokens"], before.get(r[key]))
    return rows


def build(client, config, period: Period, kind: str, users_limit: int | None = None) -> dict[str, Any]:
    """The report's dict. ``users_limit`` keeps only that many users (the most tokens first) in the
    user table, as the HTML page shows them; the totals still count every user."""
    prev = period.previous()
    big = 1_000_000

    def by_model(p: Period):
        return q(client, config, "usage_by_model", start=p.start_ts, end=p.end_ts, user="")

    # Every query of the report at once (thirteen; the pool runs eight side by side). Of the
    # previous period the tables show only each row's tokens, so its user and agent queries
    # leave out the costs and distinct users, most of those queries' work.
    r = parallel(
        **dashboard.prefixed("cur_", dashboard.figure_calls(client, config, period)),
        **dashboard.prefixed("prev_", dashboard.figure_calls(client, config, prev)),
        **dashboard.daily_calls(client, config, period),
        users=lambda: q(client, config, "tasks_by_user", start=period.start, end=period.end,
                        limit=big if users_limit is None else users_limit),
        prev_users=lambda: q(client, config, "tokens_by_user", start=prev.start, end=prev.end),
        agents=lambda: q(client, config, "usage_by_agent", start=period.start, end=period.end, user="", limit=big),
        prev_agents=lambda: q(client, config, "cost_by_agent_all", start=prev.start, end=prev.end, limit=big),
        models=lambda: by_model(period), prev_models=lambda: by_model(prev),
        unpriced=lambda: q(client, config, "unpriced_models", start=period.start, end=period.end),
    )
    cur_f = dashboard.figures_of(r["cur_totals"], r["cur_cost"])
    prev_f = dashboard.figures_of(r["prev_totals"], r["prev_cost"])
    return {
        "kind": kind,
        "period": period.as_dict(),
        "previous_period": prev.as_dict(),
        "totals": [{"figure": label, "key": key, "current": cur_f[key], "previous": prev_f[key],
                    "change": dashboard.changes_of(cur_f, prev_f, [key])[key]} for key, label in _FIGURES],
        "daily": dashboard.daily_of(period, r["days"], r["costs"]),
        "users": _with_previous(r["users"], r["prev_users"], "user_id"),
        "agents": _with_previous(r["agents"], r["prev_agents"], "agent"),
        "models": _with_previous(r["models"], r["prev_models"], "model"),
        "unpriced_models": r["unpriced"],
        "users_on_page": USERS_ON_PAGE,
        # users with tasks in the period: the rows of the whole user table (the CSV's)
        "users_total": cur_f["active_users"],
    }


def csv_rows(ctx: dict[str, Any], table: str) -> tuple[list[str], list[list[Any]]]:
    """The rows of one table for CSV, each number with the decimals of its kind (swarmlens.render.fmt)."""
    from swarmlens.render import fmt

    columns = CSV_COLUMNS[table]
    out = []
    for r in ctx[table]:
        line = []
        for c in columns:
            kind = fmt.kind_of(c)
            if table == "totals" and c in ("current", "previous"):
                kind = fmt.kind_of(r["key"]) if r["key"] != "avg_tokens_per_task" else "average"
            line.append(fmt.plain(r.get(c), kind))
        out.append(line)
    return columns, out
