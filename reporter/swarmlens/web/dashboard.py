"""The dashboard (ops); end users land on their own page instead."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for

from swarmlens.reports import common as rc
from swarmlens.reports import dashboard as report
from swarmlens.web.common import arg_choice, client, config, page, period_or_400, principal, requires

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@requires("any")
def dashboard():
    who = principal()
    if not who.is_ops:
        return redirect(url_for("users.user_page", user_id=who.id))
    key = arg_choice("period", rc.DASHBOARD_PERIODS, "30d")
    period = period_or_400(rc.dashboard_period, key)
    return page("dashboard.html", report.build(client(), config(), period))
