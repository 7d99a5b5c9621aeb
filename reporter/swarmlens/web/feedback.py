"""The latest feedback with comments (ops)."""

from __future__ import annotations

from flask import Blueprint

from swarmlens.reports import common as rc
from swarmlens.reports import feedback as report
from swarmlens.web.common import arg_choice, arg_int, client, config, page, period_or_400, requires

bp = Blueprint("feedback", __name__)


@bp.route("/feedback")
@requires("ops")
def feedback_list():
    key = arg_choice("period", rc.DASHBOARD_PERIODS, "30d")
    vote = {"all": 0, "up": 1, "down": -1}[arg_choice("vote", ("all", "up", "down"), "all")]
    period = period_or_400(rc.dashboard_period, key)
    ctx = report.feedback_list(client(), config(), period, vote, arg_int("limit", 200, 1, 1000))
    ctx["periods"] = rc.DASHBOARD_PERIODS
    ctx["period_key"] = key
    return page("feedback.html", ctx)
