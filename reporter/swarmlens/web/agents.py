"""Agents: ranking, handoff graph, optimization guide."""

from __future__ import annotations

from flask import Blueprint

from swarmlens.reports import agents as report
from swarmlens.reports import common as rc
from swarmlens.web.common import arg_choice, client, config, page, period_or_400, requires

bp = Blueprint("agents", __name__)


@bp.route("/agents")
@requires("ops")
def agents():
    key = arg_choice("period", rc.DASHBOARD_PERIODS, "30d")
    sort = arg_choice("sort", report.SORTS, "tasks")
    period = period_or_400(rc.dashboard_period, key)
    ctx = report.build(client(), config(), period, sort)
    ctx["periods"] = rc.DASHBOARD_PERIODS
    return page("agents.html", ctx)
