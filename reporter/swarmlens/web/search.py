"""Search over tasks; end users search their own tasks only."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, request

from swarmlens.render.files import download_name
from swarmlens.reports import common as rc
from swarmlens.reports import search as report
from swarmlens.web import csvout
from swarmlens.web.common import (arg_choice, arg_int, arg_text, client, config, decode_cursor, form_page,
                                  keyset_params, next_cursor, period_or_400, principal, requires, typed)

bp = Blueprint("search", __name__)


def search_params() -> dict:
    """The search filters of the query string, validated (shared with the API)."""
    who = principal()
    period = period_or_400(rc.date_range, arg_text("from", 10), arg_text("to", 10), 30)
    return {
        "period": period,
        "q_text": arg_text("q", 200),
        "user": arg_text("user", 128) if who.is_ops else who.id,
        "agent": arg_text("agent", 128),
        "status": arg_choice("status", report.STATUSES, ""),
        "limit": arg_int("limit", config()["SWARMLENS_PAGE_SIZE"], 1, 500),
    }


@bp.route("/search")
@requires("any")
def search():
    return form_page("search.html", _search_page, _search_form)


def _menus() -> dict:
    who, c, cfg = principal(), client(), config()
    r = rc.parallel(agents=lambda: rc.q(c, cfg, "known_agents", user="" if who.is_ops else who.id),
                    users=lambda: rc.q(c, cfg, "known_users") if who.is_ops else [{"user_id": who.id}])
    return {"agents": [a["agent"] for a in r["agents"]], "users": [u["user_id"] for u in r["users"]]}


def _search_form() -> dict:
    """The search form as typed, shown again beside what was wrong with it."""
    return {"filters": typed("q", "from", "to", "user", "agent", "status", "limit"), **_menus()}


def _search_page() -> dict:
    params = search_params()
    cursor = decode_cursor(arg_text("cursor", 300))
    who = principal()
    c, cfg = client(), config()
    # The search and the two filter menus at once.
    r = rc.parallel(
        rows=lambda: report.search(c, cfg, cursor_params=keyset_params(cursor), **params),
        agents=lambda: rc.q(c, cfg, "known_agents", user="" if who.is_ops else who.id),
        users=lambda: rc.q(c, cfg, "known_users") if who.is_ops else [{"user_id": who.id}],
    )
    rows = r["rows"]
    nxt = next_cursor(rows, params["limit"])
    # A first page that is not full is every match: counting again would only repeat the search
    # (and a rare or absent word is the costly one to look for).
    if cursor is None and nxt is None:
        count = len(rows)
    else:
        count = report.count(c, cfg, **{k: v for k, v in params.items() if k != "limit"})
    ctx = {
        "filters": {"q": params["q_text"], "from": params["period"].start.isoformat(),
                    "to": (params["period"].end - timedelta(days=1)).isoformat(), "user": params["user"],
                    "agent": params["agent"], "status": params["status"], "limit": params["limit"]},
        "tasks": rows,
        "next_cursor": nxt,
        "first_page": cursor is None,
        "agents": [a["agent"] for a in r["agents"]],
        "users": [u["user_id"] for u in r["users"]],
        "searched": bool(request.args),
        "count": min(count, report.COUNT_CAP),
        "count_capped": count > report.COUNT_CAP,
        "highlight": report.highlight_terms(params["q_text"]),
    }
    return ctx


@bp.route("/search.csv")
@requires("any")
def search_csv():
    """The matching tasks as CSV, newest first, up to csvout.MAX_ROWS."""
    params = search_params()
    params["limit"] = csvout.MAX_ROWS
    rows = report.search(client(), config(), cursor_params=keyset_params(None), **params)[:csvout.MAX_ROWS]
    p = params["period"]
    return csvout.tasks_response(rows, download_name("search", p.start.isoformat(), (p.end - timedelta(days=1)).isoformat(), ext="csv"))
