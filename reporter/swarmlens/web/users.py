"""Users list (ops) and a user's page (ops, or that user), with their monthly PDF."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort, redirect, url_for

from swarmlens.render.files import download_name
from swarmlens.reports import common as rc
from swarmlens.reports import users as report
from swarmlens.web.common import (arg_choice, arg_int, arg_text, check_user_access, client, config, decode_cursor,
                                  form_page, keyset_params, next_cursor, page, period_or_400, principal, requires,
                                  typed)

bp = Blueprint("users", __name__)


@bp.route("/users")
@requires("ops")
def users_list():
    def build() -> dict:
        sort = arg_choice("sort", report.SORTS, "tokens")
        direction = arg_choice("dir", ("asc", "desc"), "desc")
        return report.users_list(client(), config(), sort, direction, page=arg_int("page", 1, 1, 1_000_000),
                                 per_page=arg_int("limit", report.USERS_PER_PAGE, 1, 1000))

    def form() -> dict:
        t = typed("sort", "dir", "limit")
        return {"sorts": list(report.SORTS), "sort": t["sort"] or "tokens", "dir": t["dir"] or "desc",
                "per_page": t["limit"] or report.USERS_PER_PAGE}

    return form_page("users.html", build, form)


@bp.route("/me")
@requires("any")
def me():
    return redirect(url_for("users.user_page", user_id=principal().id) if not principal().is_ops
                    else url_for("dashboard.dashboard"))


@bp.route("/users/<path:user_id>")
@requires("any")
def user_page(user_id: str = ""):
    check_user_access(user_id)
    limit = arg_int("limit", config()["SWARMLENS_PAGE_SIZE"], 1, 500)
    cursor = decode_cursor(arg_text("cursor", 300))
    ctx = report.user_page(client(), config(), user_id, limit=limit, cursor_params=keyset_params(cursor))
    ctx["next_cursor"] = next_cursor(ctx["tasks"], limit)
    ctx["limit"] = limit
    ctx["first_page"] = cursor is None
    if not ctx["tasks"] and not ctx["quota"]["plan"] and not ctx["figures_30d"]["tasks"] and cursor is None \
            and not ctx["agents"]:
        abort(404, description=f"no user {user_id!r}: no tasks in the last 90 days and no configuration")
    return page("user.html", ctx)


@bp.route("/users/<path:user_id>/report.pdf")
@requires("any")
def user_pdf(user_id: str):
    check_user_access(user_id)
    from swarmlens.render import pdf

    month = period_or_400(rc.month_period, arg_text("month", 10))
    # the month's own figures, quota included: the document the monthly mail carries
    ctx = report.user_month_context(client(), config(), user_id, month)
    body = pdf.user_month_pdf(ctx)
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{download_name(user_id, month.key, ext="pdf")}"'})


@bp.route("/users/<path:user_id>/history.csv")
@requires("any")
def user_history_csv(user_id: str):
    """A user's tasks in a date range (the last 90 days by default) as CSV, newest first."""
    check_user_access(user_id)
    from swarmlens.reports import search
    from swarmlens.web import csvout

    period = period_or_400(rc.date_range, arg_text("from", 10), arg_text("to", 10), 90)
    rows = search.search(client(), config(), period=period, q_text="", user=user_id, agent="", status="",
                         limit=csvout.MAX_ROWS, cursor_params=keyset_params(None))[:csvout.MAX_ROWS]
    last = period.end - timedelta(days=1)
    return csvout.tasks_response(rows, download_name(user_id, "history", period.start.isoformat(), last.isoformat(),
                                                     ext="csv"))
