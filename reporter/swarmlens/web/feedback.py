"""The latest feedback with comments (ops): filtered by period, agent and vote, a page at a time."""

from __future__ import annotations

from flask import Blueprint

from swarmlens.reports import common as rc
from swarmlens.reports import feedback as report
from swarmlens.web import filters
from swarmlens.web.common import arg_choice, arg_int, arg_text, client, config, form_page, requires, typed

bp = Blueprint("feedback", __name__)


def _agents() -> list[str]:
    return [a["agent"] for a in rc.q(client(), config(), "known_agents", user="")]


@bp.route("/feedback")
@requires("ops")
def feedback_list():
    def build() -> dict:
        f = filters.read("30d", scope=False)
        vote = arg_choice("vote", report.VOTE_FILTERS, "all")
        agent = arg_text("agent", 128)
        per_page = arg_int("limit", config()["SWARMLENS_PAGE_SIZE"], 1, 500)
        ctx = report.feedback_list(client(), config(), f.period, report.VOTE_FILTERS[vote], per_page, agent,
                                   arg_int("page", 1, 1, 1_000_000))
        # What every link of the page keeps: the period, the agent, the vote and the page size.
        keep = {k: v for k, v in (("agent", agent), ("vote", "" if vote == "all" else vote),
                                  ("limit", per_page if per_page != config()["SWARMLENS_PAGE_SIZE"] else "")) if v}
        return {**ctx, "periods": rc.DASHBOARD_PERIODS, "filters": {**f.as_dict(), "agent": agent, "vote": vote},
                "keep": keep, "view": {**f.args(), **keep}, "agents": _agents()}

    def form() -> dict:
        t = typed("agent", "vote")
        return {"periods": rc.DASHBOARD_PERIODS, "filters": {**filters.typed("30d"), **t, "vote": t["vote"] or "all"},
                "keep": {}, "agents": _agents()}

    return form_page("feedback.html", build, form)
