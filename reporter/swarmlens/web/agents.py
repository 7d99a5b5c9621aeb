"""Agents: ranking, handoff graph, optimization guide; narrowed by date range, user, agent and model."""

from __future__ import annotations

from flask import Blueprint, request

from swarmlens.reports import agents as report
from swarmlens.reports import common as rc
from swarmlens.web import filters
from swarmlens.web.common import arg_choice, client, config, form_page, requires
from swarmlens.web.dashboard import menus

bp = Blueprint("agents", __name__)


@bp.route("/agents")
@requires("ops")
def agents():
    c, cfg = client(), config()

    def build() -> dict:
        f = filters.read("30d")
        sort = arg_choice("sort", report.SORTS, "tasks")
        if f.scoped:
            ctx = report.build_scoped(c, cfg, f.period, sort, user=f.user, agent=f.agent, model=f.model)
        else:
            ctx = report.build(c, cfg, f.period, sort)
        return {**ctx, "periods": rc.DASHBOARD_PERIODS, "filters": f.as_dict(), "menus": menus(c, cfg)}

    # The sort order is kept as typed only when it is one the page knows: it goes back into links.
    sort = request.args.get("sort") if request.args.get("sort") in report.SORTS else "tasks"
    return form_page("agents.html", build, lambda: {"periods": rc.DASHBOARD_PERIODS, "sort": sort,
                                                     "filters": filters.typed("30d"), "menus": menus(c, cfg)})
