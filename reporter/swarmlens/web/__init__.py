"""The reporter's blueprints, one per area, and what runs around every request: who the caller is,
the CSRF check, template helpers and errors (JSON for the API and ?format=json, HTML otherwise)."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request, session
from werkzeug.exceptions import HTTPException

from swarmlens import auth as authn  # not "auth": the blueprint module swarmlens.web.auth takes that name here
from swarmlens.errors import InvalidInput
from swarmlens.store.client import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

BLUEPRINTS = ("auth", "dashboard", "users", "search", "tasks", "reports", "agents", "feedback", "admin", "api",
              "docs", "health")

# Endpoints that never touch ClickHouse, not even to check a session: they keep answering while
# it is down (static files, the health endpoints).
NO_STORE_ENDPOINTS = frozenset({"static", "health.healthz", "health.readyz"})

# On every response. Pages carry no inline script and no style attribute (charts are inline SVG
# with presentation attributes, which CSP does not govern), so nothing but our own files may load.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def register(app: Flask) -> None:
    import importlib

    from swarmlens.render import charts, fmt
    from swarmlens.web import common

    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(f"swarmlens.web.{name}").bp)

    app.jinja_env.globals.update(chart=charts, csrf_token=lambda: authn.csrf_token(session))
    app.jinja_env.filters.update(fmt.FILTERS)

    @app.before_request
    def _who_is_asking():
        g.principal = None
        if request.endpoint in NO_STORE_ENDPOINTS:
            return None
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
            # Re-checked on every request: signing out, a new password, a disabled account or a
            # revoked token ends the session at once, whichever copy of the cookie comes back.
            try:
                g.principal = authn.session_principal(common.client(), common.config(), who)
            except StoreUnavailable:
                if request.endpoint != "auth.login" or request.method != "GET":
                    raise
                # The sign-in page still shows while the database is down (as to a stranger).
            else:
                if g.principal is None:
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

    @app.after_request
    def _security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput):
        # a value a person gave that a form did not catch first: its message, as a 400
        return _error(exc.status, str(exc))

    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable):
        log.error("ClickHouse unavailable: %s", exc)
        app.extensions["swarmlens_pool"].suspect()
        return _error(503, "the database is not reachable right now, so this page cannot be shown; "
                           "try again in a moment", retry_after=5)

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError):
        if exc.code in QUERY_LIMIT_CODES:
            log.warning("query stopped by its limit: %s", exc)
            return _error(503, f"this page's query {QUERY_LIMIT_CODES[exc.code]}, so it was stopped; "
                               "narrow the period or try again later", retry_after=30)
        from swarmlens.store import health

        if exc.code in health.DAMAGE_CODES:
            table = health.table_in(str(exc)) or "a table"
            suspects = app.extensions.setdefault("swarmlens_damage_suspects", {})
            suspects[(table, health.part_in(str(exc)))] = str(exc)[:2000]  # for /readyz to confirm
            log.error("a damaged part of %s: %s", table, exc)
            return _error(500, f"the database table {table} has a damaged part, so this page cannot be shown; "
                               f"`swarmlens db check` names it and `{health.REPAIR_COMMAND}` sets it aside")
        log.exception("query failed")
        return _error(500, "a database query failed; the error is in the reporter's log")


# ClickHouse's codes for a query stopped by SWARMLENS_QUERY_TIMEOUT_SECONDS or
# SWARMLENS_QUERY_MAX_MEMORY_BYTES: the server is fine, the page asked too much of it.
QUERY_LIMIT_CODES = {159: "ran longer than the reporter allows", 160: "ran longer than the reporter allows",
                     241: "needed more memory than the reporter allows"}


def _nav(who) -> list[tuple[str, str]]:
    if who is None:
        return []
    if not who.is_ops:
        return [("users.user_page", "My usage"), ("search.search", "Search"), ("docs.api_reference", "API")]
    return [("dashboard.dashboard", "Dashboard"), ("users.users_list", "Users"), ("search.search", "Search"),
            ("reports.monthly", "Reports"), ("agents.agents", "Agents"), ("feedback.feedback_list", "Feedback"),
            ("admin.plans", "Admin"), ("docs.api_reference", "API")]


def _error(status: int, message: str, exc: HTTPException | None = None, retry_after: int | None = None):
    from swarmlens.web.common import wants_json

    names = {400: "Bad request", 401: "Sign-in required", 403: "Forbidden", 404: "Not found",
             405: "Method not allowed", 413: "Request too large", 422: "Unprocessable request",
             429: "Too many requests",
             500: "Server error", 503: "Service unavailable"}
    headers = {}
    if retry_after:
        headers["Retry-After"] = str(retry_after)
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
