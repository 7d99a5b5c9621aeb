"""Weekly and monthly usage reports, with CSV export of every table and a PDF."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, redirect, url_for

from swarmlens.render.files import download_name
from swarmlens.reports import common as rc
from swarmlens.reports import usage as report
from swarmlens.web.common import (arg_choice, arg_text, client, config, form_page, period_or_400, requires, typed,
                                  wants_json)

bp = Blueprint("reports", __name__)

KINDS = {"weekly": ("week", rc.week_period), "monthly": ("month", rc.month_period)}


def _build(kind: str, page_only: bool = False):
    """The report of the request's period. ``page_only``: the HTML page, which lists only the
    first report.USERS_ON_PAGE users (the JSON, CSV and PDF have them all)."""
    if kind == "custom":
        return _build_custom(page_only)
    param, parse = KINDS[kind]
    period = period_or_400(parse, arg_text(param, 10))
    ctx = report.build(client(), config(), period, kind, _users_limit(page_only))
    prev_p, next_p = period.previous(), parse(None, period.end)
    ctx["nav"] = {"param": param, "previous": prev_p.key if kind == "monthly" else
                  rc.week_period(None, period.start - timedelta(days=7)).key,
                  "next": next_p.key, "this": parse(None).key}
    ctx["tables"] = list(report.TABLES)
    ctx["period_args"] = {param: period.key}
    ctx["last_day"] = (period.end - timedelta(days=1)).isoformat()
    return period, ctx


def _users_limit(page_only: bool) -> int | None:
    return report.USERS_ON_PAGE if page_only and not wants_json() else None


def _build_custom(page_only: bool = False):
    """A report of any from/to range (both days included, at most filters.MAX_RANGE_DAYS), compared
    with as many days before."""
    from swarmlens.web import filters

    # Without dates: the last 30 days, as search does.
    period = filters.custom_range() or rc.date_range(None, None, 30)
    last = period.end - timedelta(days=1)
    period = rc.Period(f"{period.start.isoformat()}..{last.isoformat()}", period.label, period.start, period.end)
    ctx = report.build(client(), config(), period, "custom", _users_limit(page_only))
    ctx["nav"] = {"param": None}
    ctx["period_args"] = {"from": period.start.isoformat(), "to": last.isoformat()}
    ctx["last_day"] = last.isoformat()
    ctx["tables"] = list(report.TABLES)
    return period, ctx


@bp.route("/reports/custom")
@requires("ops")
def custom():
    return _report_page("custom")


@bp.route("/reports/")
@requires("ops")
def index():
    return redirect(url_for("reports.monthly"))


def _report_page(kind: str):
    """The report's page; an invalid week, month or range shows its form again (status 400)."""
    return form_page("report.html", lambda: _build(kind, page_only=True)[1],
                     lambda: {"kind": kind, "nav": {"param": None}, "typed": typed("week", "month", "from", "to")})


@bp.route("/reports/weekly")
@requires("ops")
def weekly():
    return _report_page("weekly")


@bp.route("/reports/monthly")
@requires("ops")
def monthly():
    return _report_page("monthly")


@bp.route("/reports/<any(weekly, monthly, custom):kind>.csv")
@requires("ops")
def usage_csv(kind: str):
    table = arg_choice("table", report.TABLES, "users")
    period, ctx = _build(kind)
    columns, rows = report.csv_rows(ctx, table)
    from swarmlens.render import csvsafe

    return Response(csvsafe.dumps(columns, rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{download_name(kind, period.key, table, ext="csv")}"'})


@bp.route("/reports/<any(weekly, monthly, custom):kind>.pdf")
@requires("ops")
def usage_pdf(kind: str):
    from swarmlens.render import pdf

    period, ctx = _build(kind)
    return Response(pdf.usage_report_pdf(ctx), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{download_name(kind, period.key, ext="pdf")}"'})
