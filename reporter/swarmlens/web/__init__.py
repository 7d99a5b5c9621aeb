"""The reporter's blueprints, one per area, and what runs around every request: who the caller is,
the CSRF check, template helpers and errors (JSON for the API and ?format=json, HTML otherwise)."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request, session
from werkzeug.exceptions import HTTPException

from swarmlens import auth as authn  # not "auth": the blueprint module swarmlens.web.auth takes that name here
from swarmlens.store.client import StoreError, StoreUnavailable

log = logging.getLogger("swarmlens.reporter")

BLUEPRINTS = ("auth", "dashboard", "users", "search", "tasks", "reports", "agents", "feedback", "admin", "api",
              "docs")


def register(app: Flask) -> None:
    import importlib

    from swarmlens.web import charts, common, fmt

    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(f"swarmlens.web.{name}").bp)

    app.jinja_env.globals.update(chart=charts, csrf_token=lambda: authn.csrf_token(session))
    app.jinja_env.filters.update(fmt.FILTERS)

    @app.before_request
    def _who_is_asking():
        g.principal = None
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _error(401, "the Authorization header must be 'Bearer <token>'")
            g.principal = authn.principal_for_token(common.client(), common.config(), token.strip())
            if g.principal is None:
                return _error(401, "the API token is unknown, revoked or expired")
            return None
        if request.path.startswith("/api/"):
            return None  # the API takes bearer tokens only, so no cookie can act for a browser there
        who = session.get("who")
        if who:
            # Re-checked on every request, so a disabled account or a revoked token signs out at once.
            if who.get("kind") == "ops":
                account = authn.ops_account(common.client(), common.config(), who.get("id", ""))
                valid = bool(account and not account["disabled"])
            else:
                found = authn.principal_for_token_hash(common.client(), common.config(), who.get("token_hash", ""))
                valid = bool(found and found.id == who.get("id"))
            if valid:
                g.principal = authn.Principal(who["kind"], who["id"], "session")
            else:
                session.pop("who", None)
        if request.method not in ("GET", "HEAD", "OPTIONS") and (g.principal or request.path == "/login"):
            if not authn.csrf_ok(session, request.form.get("csrf_token")):
                return _error(400, "the form's CSRF token is missing or out of date: reload the page and try again")
        return None

    @app.context_processor
    def _template_context():
        return {"who": g.get("principal"), "menu": _nav(g.get("principal"))}

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return _error(exc.code or 500, exc.description or exc.name, exc)

    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable):
        log.error("ClickHouse unavailable: %s", exc)
        return _error(503, "the database is not reachable right now; try again in a moment")

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError):
        log.exception("query failed")
        return _error(500, "a database query failed; the error is in the reporter's log")


def _nav(who) -> list[tuple[str, str]]:
    if who is None:
        return []
    if not who.is_ops:
        return [("users.user_page", "My usage"), ("search.search", "Search"), ("docs.api_reference", "API")]
    return [("dashboard.dashboard", "Dashboard"), ("users.users_list", "Users"), ("search.search", "Search"),
            ("reports.monthly", "Reports"), ("agents.agents", "Agents"), ("feedback.feedback_list", "Feedback"),
            ("admin.plans", "Admin"), ("docs.api_reference", "API")]


def _error(status: int, message: str, exc: HTTPException | None = None):
    from swarmlens.web.common import wants_json

    names = {400: "Bad request", 401: "Sign-in required", 403: "Forbidden", 404: "Not found",
             405: "Method not allowed", 413: "Request too large", 422: "Unprocessable request",
             500: "Server error", 503: "Service unavailable"}
    headers = {}
    if status == 401 and (wants_json() or "Authorization" in request.headers):
        headers["WWW-Authenticate"] = 'Bearer realm="swarmlens"'
    if exc is not None and status == 405:
        allowed = exc.get_response().headers.get("Allow")
        if allowed:
            headers["Allow"] = allowed
    if wants_json() or "Authorization" in request.headers:
        from flask import jsonify

        body = {"error": {"status": status, "title": names.get(status, "Error"), "message": message}}
        return jsonify(body), status, headers
    return render_template("error.html", status=status, title=names.get(status, "Error"), message=message), \
        status, headers
