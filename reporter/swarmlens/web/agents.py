"""Agents: ranking, handoff graph, optimization guide; narrowed by date range, user, agent and model."""

from __future__ import annotations

from flask import Blueprint

from swarmlens.reports import agents as report
from swarmlens.reports import common as rc
from swarmlens.web import filters
from swarmlens.web.common import arg_choice, client, config, page, requires
from swarmlens.web.dashboard import menus

bp = Blueprint("agents", __name__)


@bp.route("/agents")
@requires("ops")
def agents():
    f = filters.read("30d")
    sort = arg_choice("sort", report.SORTS, "tasks")
    c, cfg = client(), config()
    if f.scoped:
        ctx = report.build_scoped(c, cfg, f.period, sort, user=f.user, agent=f.agent, model=f.model)
    else:
        ctx = report.build(c, cfg, f.period, sort)
    ctx["periods"] = rc.DASHBOARD_PERIODS
    ctx["filters"] = f.as_dict()
    ctx["menus"] = menus(c, cfg)
    return page("agents.html", ctx)
