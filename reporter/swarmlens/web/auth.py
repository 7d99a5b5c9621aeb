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


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = "", 200
    nxt = _safe_next(request.values.get("next"))
    if request.method == "POST":
        mode = request.form.get("mode", "ops")
        if mode == "token":
            token = (request.form.get("token") or "").strip()
            who = auth.principal_for_token(client(), config(), token)
            if who is None:
                error, status = "That token is unknown, revoked or expired.", 401
            else:
                session.clear()
                session.permanent = True
                session["who"] = {"kind": who.kind, "id": who.id,
                                  "token_hash": auth.hash_token(token) if who.kind == "user" else ""}
                if who.kind == "ops":
                    session["who"] = {"kind": "ops", "id": who.id}
                return redirect(nxt or url_for("dashboard.dashboard"))
        else:
            login_name = (request.form.get("login") or "").strip()
            if auth.check_ops_password(client(), config(), login_name, request.form.get("password") or ""):
                session.clear()  # a fresh session (and CSRF token) at every sign-in
                session.permanent = True
                session["who"] = {"kind": "ops", "id": login_name}
                return redirect(nxt or url_for("dashboard.dashboard"))
            error, status = "Wrong login or password.", 401
    elif principal() is not None:
        return redirect(nxt or url_for("dashboard.dashboard"))
    return render_template("login.html", error=error, next=nxt or ""), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
