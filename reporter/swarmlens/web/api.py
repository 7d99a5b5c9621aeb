"""The JSON API, /api/v1, bearer tokens only (see openapi.py for the document).

A ``user`` token reads its own user's history, task details and usage, and posts feedback on its own
tasks; another user's task is a 404, as if it did not exist. An ``ops`` token reads any user.
Errors are JSON: ``{"error": {"status", "title", "message"}}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, jsonify, request, url_for

from swarmlens.reports import common as rc
from swarmlens.reports import dashboard
from swarmlens.reports import feedback as fb
from swarmlens.reports import search as search_report
from swarmlens.reports import task as task_report
from swarmlens.reports import users as users_report
from swarmlens.web.common import (arg_choice, arg_text, client, config, decode_cursor, keyset_params, next_cursor,
                                  period_or_400, principal, requires)
from swarmlens.web.openapi import document
from swarmlens.web.search import search_params
from swarmlens.web.tasks import visible_task

bp = Blueprint("api", __name__, url_prefix="/api/v1")

TASK_FIELDS = ("task_id", "user_id", "session_id", "start_time", "duration_ms", "status", "error_type", "input",
               "output", "agents", "final_agent", "handoffs", "total_tokens")


def _task_summary(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in TASK_FIELDS if k in row}
    out["url"] = url_for("api.task_detail", task_id=row["task_id"])
    return out


def _history(user_id: str):
    params = search_params()
    params["user"] = user_id
    cursor = decode_cursor(arg_text("cursor", 300))
    rows = search_report.search(client(), config(), cursor_params=keyset_params(cursor), **params)
    nxt = next_cursor(rows, params["limit"])
    return jsonify({"user_id": user_id, "from": params["period"].start.isoformat(),
                    "to": (params["period"].end - timedelta(days=1)).isoformat(),
                    "tasks": [_task_summary(r) for r in rows], "next_cursor": nxt})


def _own_user() -> str:
    who = principal()
    if who.is_ops:
        abort(403, description="an ops token has no history of its own: use /api/v1/users/{user_id}/tasks")
    return who.id


def _usage(user_id: str):
    key = arg_choice("period", rc.DASHBOARD_PERIODS, "this_month")
    period = period_or_400(rc.dashboard_period, key)
    figures = dashboard.figures(client(), config(), period, user=user_id)
    figures.pop("unpriced_tokens", None)
    return jsonify({"user_id": user_id, "period": period.as_dict(), "usage": figures,
                    "quota": _quota(users_report.quota_status(client(), config(), user_id)),
                    "agents": [{k: r[k] for k in ("agent", "runs", "tokens", "cost_usd")} for r in
                               rc.q(client(), config(), "usage_by_agent", start=period.start, end=period.end,
                                    user=user_id, limit=50)]})


def _quota(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("plan", "quota", "tokens", "percent", "level", "warn_at_percent",
                                    "overage_tokens", "message")} | {"month": row["month"]["key"]}


@bp.route("/openapi.json")
def openapi():
    return jsonify(document())


@bp.route("/me")
@requires("any")
def me():
    who = principal()
    body: dict[str, Any] = {"kind": who.kind, "id": who.id}
    if not who.is_ops:
        body["quota"] = _quota(users_report.quota_status(client(), config(), who.id))
    return jsonify(body)


@bp.route("/me/tasks")
@requires("any")
def my_tasks():
    return _history(_own_user())


@bp.route("/me/usage")
@requires("any")
def my_usage():
    return _usage(_own_user())


@bp.route("/tasks/history")
@requires("any")
def tasks_history():
    """The original design's history endpoint: a user token reads its own history; an ops token names
    the user with ?user_id=."""
    who = principal()
    requested = arg_text("user_id", 128)
    if who.is_ops:
        if not requested:
            abort(400, description="user_id is required with an ops token")
        return _history(requested)
    if requested and requested != who.id:
        abort(403, description="a user token reads its own history only")
    return _history(who.id)


@bp.route("/users/<path:user_id>/tasks")
@requires("any")
def user_tasks(user_id: str):
    if not principal().can_see_user(user_id):
        abort(403, description="a user token reads its own history only")
    return _history(user_id)


@bp.route("/users/<path:user_id>/usage")
@requires("any")
def user_usage(user_id: str):
    if not principal().can_see_user(user_id):
        abort(403, description="a user token reads its own usage only")
    return _usage(user_id)


@bp.route("/tasks/<task_id>")
@requires("any")
def task_detail(task_id: str):
    task = visible_task(task_id)
    ctx = task_report.build(client(), config(), task, principal().feedback_user)
    body = {k: task[k] for k in ("task_id", "user_id", "session_id", "conversation_id", "start_time", "end_time",
                                 "duration_ms", "status", "error_type", "error_message", "input", "output", "agents",
                                 "start_agent", "final_agent", "handoffs", "turns", "input_tokens", "output_tokens",
                                 "total_tokens")}
    body["handoff_path"] = ctx["handoff_path"]
    body["cost_usd"] = ctx["cost_usd"]
    body["spans"] = [{k: r[k] for k in ("kind", "label", "agent", "depth", "offset_ms", "duration_ms", "input_tokens",
                                        "output_tokens", "error")} for r in ctx["waterfall"]]
    body["feedback"] = ctx["feedback_summary"]
    return jsonify(body)


@bp.route("/tasks/<task_id>/usage")
@requires("any")
def task_usage(task_id: str):
    task = visible_task(task_id)
    ctx = task_report.build(client(), config(), task)
    return jsonify({"task_id": task_id, "input_tokens": task["input_tokens"], "output_tokens": task["output_tokens"],
                    "total_tokens": task["total_tokens"], "cost_usd": ctx["cost_usd"],
                    "agents": [{k: a[k] for k in ("agent", "models", "stretches", "input_tokens", "output_tokens",
                                                  "tokens", "cost_usd")} for a in ctx["agents"]]})


@bp.route("/tasks/<task_id>/feedback", methods=["GET", "POST"])
@requires("any")
def task_feedback(task_id: str):
    task = visible_task(task_id)
    who = principal()
    if request.method == "GET":
        rows = rc.q(client(), config(), "task_feedback", task=task_id)
        if not who.is_ops:
            rows = [r for r in rows if r["user_id"] == who.feedback_user]
        return jsonify({"task_id": task_id, "feedback": rows})
    request.get_data()  # raises 413 for a body over SWARMLENS_MAX_REQUEST_BYTES before anything is parsed
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='the body must be a JSON object such as {"vote": "up", "comment": "..."}')
    unknown = set(body) - {"vote", "comment"}
    if unknown:
        abort(422, description=f"unknown field(s): {', '.join(sorted(unknown))[:100]}")
    try:
        row = fb.record(client(), config(), task=task, voter=who.feedback_user, vote=body.get("vote"),
                        comment=body.get("comment"))
    except fb.InvalidFeedback as exc:
        abort(422, description=str(exc))
    return jsonify({"task_id": task_id, "user_id": row["user_id"], "vote": row["vote"], "comment": row["comment"],
                    "created_at": row["created_at"]}), 201
