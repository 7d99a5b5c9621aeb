"""The dashboard (ops); end users land on their own page instead."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for

from swarmlens.reports import common as rc
from swarmlens.reports import dashboard as report
from swarmlens.web import filters
from swarmlens.web.common import client, config, form_page, principal, requires

bp = Blueprint("dashboard", __name__)


def menus(c, cfg) -> dict:
    """The choices of the agent and model filters (users are typed, with suggestions)."""
    # Ops pages only: every user's agents (user="").
    r = rc.parallel(agents=lambda: rc.q(c, cfg, "known_agents", user=""),
                    models=lambda: rc.q(c, cfg, "known_models"))
    return {"agents": [a["agent"] for a in r["agents"]], "models": [m["model"] for m in r["models"]]}


@bp.route("/")
@requires("any")
def dashboard():
    who = principal()
    if not who.is_ops:
        return redirect(url_for("users.user_page", user_id=who.id))
    c, cfg = client(), config()

    def build() -> dict:
        f = filters.read("30d")
        if f.scoped:
            ctx = report.build_scoped(c, cfg, f.period, user=f.user, agent=f.agent, model=f.model)
        else:
            ctx = report.build(c, cfg, f.period)
        return {**ctx, "filters": f.as_dict(), "menus": menus(c, cfg)}

    return form_page("dashboard.html", build, lambda: {"periods": rc.DASHBOARD_PERIODS,
                                                        "filters": filters.typed("30d"), "menus": menus(c, cfg)})
