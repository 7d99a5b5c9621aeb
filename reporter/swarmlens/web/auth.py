"""Sign in and out: ops with login and password, end users with their API token."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for

from swarmlens import auth
from swarmlens.web.common import client, config, principal

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    # Only local paths: an attacker's link must not bounce a fresh sign-in to another site.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _limiter():
    from flask import current_app

    from swarmlens.web.loginlimit import LoginLimiter

    limiter = current_app.extensions.get("swarmlens_login_limiter")
    if limiter is None:
        limiter = current_app.extensions["swarmlens_login_limiter"] = LoginLimiter(config())
    return limiter


def _too_many(wait: int):
    from flask import make_response

    msg = f"Too many failed sign-ins: try again in {wait} seconds."
    response = make_response(render_template("login.html", error=msg, next=""), 429)
    response.headers["Retry-After"] = str(wait)
    return response


def _sign_in(record: dict, nxt: str | None):
    session.clear()  # a fresh session (and CSRF token) at every sign-in
    session.permanent = True
    session["who"] = record
    return redirect(nxt or url_for("dashboard.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = "", 200
    nxt = _safe_next(request.values.get("next"))
    if request.method == "POST":
        limiter, address = _limiter(), request.remote_addr or ""
        mode = request.form.get("mode", "ops")
        if mode == "token":
            wait = limiter.retry_after(address)
            if wait:
                return _too_many(wait)
            token = (request.form.get("token") or "").strip()
            who = auth.principal_for_token(client(), config(), token)
            record = auth.session_record(client(), config(), who, token) if who else None
            if record is not None:
                return _sign_in(record, nxt)
            limiter.failed(address)
            error, status = "That token is unknown, revoked or expired.", 401
        else:
            login_name = (request.form.get("login") or "").strip()
            wait = limiter.retry_after(address, login_name)
            if wait:
                return _too_many(wait)
            if auth.check_ops_password(client(), config(), login_name, request.form.get("password") or ""):
                record = auth.session_record(client(), config(), auth.Principal("ops", login_name, "session"))
                if record is not None:
                    limiter.succeeded(login_name, address)
                    return _sign_in(record, nxt)
            limiter.failed(address, login_name)
            error, status = "Wrong login or password.", 401
    elif principal() is not None:
        return redirect(nxt or url_for("dashboard.dashboard"))
    return render_template("login.html", error=error, next=nxt or ""), status


@bp.route("/logout", methods=["POST"])
def logout():
    record = session.get("who")
    if record and principal() is not None:
        # Server-side: this cookie, and any copy of it, stops working now.
        auth.end_sessions(client(), config(), record)
    session.clear()
    return redirect(url_for("auth.login"))
