"""A task's page, its feedback form and its PDF. A task of another user is a 404: not even its
existence shows."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, flash, redirect, request, url_for

from swarmlens.render.files import download_name
from swarmlens.reports import feedback as fb
from swarmlens.reports import task as report
from swarmlens.web.common import client, config, page, principal, requires

bp = Blueprint("tasks", __name__)

TASK_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def visible_task(task_id: str) -> dict:
    """The task if the caller may see it, else 404 (unknown and foreign look the same)."""
    if not TASK_ID.match(task_id or ""):
        abort(404, description="no such task")
    task = report.find(client(), config(), task_id)
    if not task or not principal().can_see_user(task["user_id"]):
        abort(404, description="no such task")
    return task


@bp.route("/tasks/<task_id>")
@requires("any")
def task_page(task_id: str):
    task = visible_task(task_id)
    return page("task.html", report.build(client(), config(), task, principal().feedback_user))


@bp.route("/tasks/<task_id>/feedback", methods=["POST"])
@requires("any")
def task_feedback(task_id: str):
    task = visible_task(task_id)
    try:
        fb.record(client(), config(), task=task, voter=principal().feedback_user,
                  vote=request.form.get("vote"), comment=request.form.get("comment"))
    except fb.InvalidFeedback as exc:
        abort(422, description=str(exc))
    flash("Thanks: your feedback is saved.")
    return redirect(url_for("tasks.task_page", task_id=task_id) + "#feedback", code=303)


@bp.route("/tasks/<task_id>/report.pdf")
@requires("any")
def task_pdf(task_id: str):
    from swarmlens.render import pdf

    task = visible_task(task_id)
    body = pdf.task_pdf(report.build(client(), config(), task, principal().feedback_user))
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{download_name("task", task_id, ext="pdf")}"'})
