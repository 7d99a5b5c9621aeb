"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. A test checks that every
API route is documented with its methods, and that responses match their schemas."""

from __future__ import annotations

from typing import Any

from swarmlens import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad parameters or body", 401: "Missing, unknown, revoked or expired token",
            403: "The token may not read this", 404: "Unknown task (or another user's)", 405: "Method not allowed",
            413: "Body too large", 422: "Well-formed but invalid body"}
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes} | \
        {"405": {"$ref": "#/components/responses/E405"}, "503": {"$ref": "#/components/responses/E503"}}


_Q = [
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200},
     "description": "Words that must all occur in the task input or output, in any case. A word of four "
                    "characters or more also matches longer words (`refun` finds `refund`); shorter words "
                    "match whole words."},
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "First day (UTC), inclusive; default 30 days before `to`. Days before 1970-02-01 or after "
                    "2148-12-31 (beyond what the store holds) are taken as those days."},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "Last day (UTC), inclusive; default today. Clamped as `from` is; a `to` after today is cut at "
                    "today (the answer's `to` says so); a `to` before `from` is a 400."},
    {"name": "agent", "in": "query", "schema": {"type": "string"}, "description": "Only tasks this agent worked on."},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["", "ok", "error"]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,300}={0,2}$"},
     "description": "The `next_cursor` of the previous page (keyset pagination, newest first), as it was "
                    "given: an opaque token. Any other value, even of this alphabet, is a 400."},
]
_PERIOD = {"name": "period", "in": "query",
           "schema": {"type": "string", "enum": ["", "7d", "30d", "this_month", "last_month"], "default": "this_month"},
           "description": "The period; empty or absent: the default."}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["status", "title", "message"],
        "properties": {"status": _INT, "title": _STR, "message": _STR}}}},
    "TaskSummary": {"type": "object",
                    "required": ["task_id", "user_id", "start_time", "status", "input", "output", "total_tokens", "url"],
                    "properties": {"task_id": _STR, "user_id": _STR, "session_id": _STR,
                                   "start_time": {"type": "string", "format": "date-time"}, "duration_ms": _INT,
                                   "status": {"type": "string", "enum": ["ok", "error"]}, "error_type": _STR,
                                   "input": _STR, "output": _STR, "agents": {"type": "array", "items": _STR},
                                   "final_agent": _STR, "handoffs": _INT, "total_tokens": _INT, "url": _STR}},
    "History": {"type": "object", "required": ["user_id", "from", "to", "tasks", "next_cursor"],
                "properties": {"user_id": _STR, "from": {"type": "string", "format": "date"},
                               "to": {"type": "string", "format": "date"},
                               "tasks": {"type": "array", "items": _ref("TaskSummary")},
                               "next_cursor": {"type": ["string", "null"]}}},
    "Quota": {"type": "object", "required": ["plan", "quota", "tokens", "level", "month"],
              "properties": {"plan": _STR, "quota": {"type": ["integer", "null"]}, "tokens": {"type": ["integer", "null"]},
                             "percent": {"type": ["number", "null"]},
                             "level": {"type": "string", "enum": ["none", "ok", "warn", "over"]},
                             "warn_at_percent": {"type": ["integer", "null"]}, "overage_tokens": _INT,
                             "message": _STR, "month": _STR}},
    "Me": {"type": "object", "required": ["kind", "id"],
           "properties": {"kind": {"type": "string", "enum": ["user", "ops"]}, "id": _STR, "quota": _ref("Quota")}},
    "Usage": {"type": "object", "required": ["user_id", "period", "usage", "quota", "agents"],
              "properties": {"user_id": _STR, "period": {"type": "object"},
                             "usage": {"type": "object", "required": ["tasks", "tokens", "cost_usd", "error_rate"],
                                       "properties": {"tasks": _INT, "tokens": _INT, "input_tokens": _INT,
                                                      "output_tokens": _INT, "errors": _INT, "error_rate": _NUM,
                                                      "active_users": _INT, "avg_tokens_per_task": _NUM,
                                                      "cost_usd": _NUM}},
                             "quota": _ref("Quota"),
                             "agents": {"type": "array", "items": {"type": "object", "required": ["agent", "tokens"],
                                                                   "properties": {"agent": _STR, "runs": _INT,
                                                                                  "tokens": _INT, "cost_usd": _NUM}}}}},
    "TaskDetail": {"type": "object",
                   "required": ["task_id", "user_id", "status", "input", "output", "handoff_path", "spans", "cost_usd"],
                   "properties": {"task_id": _STR, "user_id": _STR, "session_id": _STR, "conversation_id": _STR,
                                  "start_time": {"type": "string", "format": "date-time"},
                                  "end_time": {"type": "string", "format": "date-time"}, "duration_ms": _INT,
                                  "status": _STR, "error_type": _STR, "error_message": _STR, "input": _STR,
                                  "output": _STR, "agents": {"type": "array", "items": _STR}, "start_agent": _STR,
                                  "final_agent": _STR, "handoffs": _INT, "turns": _INT, "input_tokens": _INT,
                                  "output_tokens": _INT, "total_tokens": _INT,
                                  "handoff_path": {"type": "array", "items": _STR}, "cost_usd": _NUM,
                                  "spans": {"type": "array", "items": {
                                      "type": "object", "required": ["kind", "label", "offset_ms", "duration_ms"],
                                      "properties": {"kind": {"type": "string", "enum": [
                                          "task", "agent", "chat", "tool", "handoff", "other"]},
                                          "label": _STR, "agent": _STR, "depth": _INT, "offset_ms": _NUM,
                                          "duration_ms": _NUM, "input_tokens": _INT, "output_tokens": _INT,
                                          "error": _STR}}},
                                  "feedback": {"type": "object", "properties": {"up": _INT, "down": _INT}}}},
    "TaskUsage": {"type": "object", "required": ["task_id", "total_tokens", "cost_usd", "agents"],
                  "properties": {"task_id": _STR, "input_tokens": _INT, "output_tokens": _INT, "total_tokens": _INT,
                                 "cost_usd": _NUM,
                                 "agents": {"type": "array", "items": {
                                     "type": "object", "required": ["agent", "tokens", "cost_usd"],
                                     "properties": {"agent": _STR, "models": {"type": "array", "items": _STR},
                                                    "stretches": _INT, "input_tokens": _INT, "output_tokens": _INT,
                                                    "tokens": _INT, "cost_usd": _NUM}}}}},
    "FeedbackIn": {"type": "object", "required": ["vote"], "additionalProperties": False,
                   "properties": {"vote": {"oneOf": [{"type": "string", "enum": ["up", "down"]},
                                                     {"type": "integer", "enum": [1, -1]}]},
                                  "comment": {"type": "string", "maxLength": 2000}}},
    "Feedback": {"type": "object", "required": ["task_id", "user_id", "vote", "comment", "created_at"],
                 "properties": {"task_id": _STR, "user_id": _STR, "vote": {"type": "integer", "enum": [1, -1]},
                                "comment": _STR, "created_at": {"type": "string", "format": "date-time"}}},
    "FeedbackList": {"type": "object", "required": ["task_id", "feedback"],
                     "properties": {"task_id": _STR, "feedback": {"type": "array", "items": _ref("Feedback")}}},
}


def document() -> dict[str, Any]:
    history_get = lambda summary, extra=(): {  # noqa: E731
        "summary": summary, "parameters": list(extra) + _Q,
        "responses": {"200": _json(_ref("History"), "A page of tasks, newest first")} | _errors(400, 401, 403)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "swarmlens API", "version": __version__,
                 "description": "Usage history of multi-agent OpenAI Swarm apps. Send "
                                "`Authorization: Bearer <token>`. A user token sees its own user's tasks only "
                                "(another user's task is a 404); an ops token sees every user. Tokens are "
                                "created with `swarmlens users token create` or on /admin/tokens."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                             "responses": {"200": _json({"type": "object"}, "OpenAPI document")}
                                             | _errors()}},
            "/api/v1/me": {"get": {"summary": "Who the token belongs to, and a user's quota status",
                                   "responses": {"200": _json(_ref("Me"), "The caller")} | _errors(401)}},
            "/api/v1/me/tasks": {"get": history_get("The caller's own task history (user tokens)")},
            "/api/v1/me/usage": {"get": {"summary": "The caller's usage and quota (user tokens)", "parameters": [_PERIOD],
                                         "responses": {"200": _json(_ref("Usage"), "Usage")} | _errors(400, 401, 403)}},
            "/api/v1/tasks/history": {"get": history_get(
                "Task history, as in the original design: own history, or ?user_id= with an ops token",
                [{"name": "user_id", "in": "query", "schema": _STR,
                  "description": "Required with an ops token; with a user token, only the token's own user."}])},
            "/api/v1/users/{user_id}/tasks": {"get": history_get("A user's task history (ops, or that user)", [_USER_ID])},
            "/api/v1/users/{user_id}/usage": {"get": {"summary": "A user's usage and quota (ops, or that user)",
                                                      "parameters": [_USER_ID, _PERIOD],
                                                      "responses": {"200": _json(_ref("Usage"), "Usage")}
                                                      | _errors(400, 401, 403)}},
            "/api/v1/tasks/{task_id}": {"get": {"summary": "A task: input, output, spans, handoff path, cost",
                                                "parameters": [_TASK_ID],
                                                "responses": {"200": _json(_ref("TaskDetail"), "The task")}
                                                | _errors(401, 404)}},
            "/api/v1/tasks/{task_id}/usage": {"get": {"summary": "Tokens and cost of a task, per agent",
                                                      "parameters": [_TASK_ID],
                                                      "responses": {"200": _json(_ref("TaskUsage"), "Usage")}
                                                      | _errors(401, 404)}},
            "/api/v1/tasks/{task_id}/feedback": {
                "get": {"summary": "Feedback on a task (a user token sees its own vote)", "parameters": [_TASK_ID],
                        "responses": {"200": _json(_ref("FeedbackList"), "Votes")} | _errors(401, 404)},
                "post": {"summary": "Vote 👍/👎 on a task, with an optional comment; the latest vote per (task, user) wins",
                         "parameters": [_TASK_ID],
                         "requestBody": {"required": True,
                                         "content": {"application/json": {"schema": _ref("FeedbackIn")}}},
                         "responses": {"201": _json(_ref("Feedback"), "Stored")}
                         | _errors(400, 401, 404, 413, 422)}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {f"E{c}": _json(_ref("Error"), d) for c, d in {
                400: "Bad parameters or body", 401: "Missing, unknown, revoked or expired token",
                403: "The token may not read this", 404: "Unknown task (or another user's)",
                405: "Method not allowed", 413: "Body too large", 422: "Well-formed but invalid body",
                503: "ClickHouse unreachable, or a query over its time or memory limit (see Retry-After)"}.items()},
        },
    }
