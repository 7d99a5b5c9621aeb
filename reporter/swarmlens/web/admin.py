"""Admin (ops): plans and their quotas, plan assignment, model prices, API tokens, the overage list."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, request, url_for

from swarmlens import accounts, auth
from swarmlens.reports import common as rc
from swarmlens.web.common import client, config, page, principal, requires

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _admin_page(template: str, ctx: dict, error: str = "", status: int = 200):
    ctx["error"] = error
    return page(template, ctx, status)


# Users shown on the plans page (the most tokens first; /users lists them all, page by page) and
# user ids offered by the assignment form. Rendering every configured user (twice) made the page as
# slow on small data as on large: with 10,000 users, 1.9 MB of HTML and about 90% of its 370 ms.
PLANS_PAGE_USERS = 50
PLANS_PAGE_USER_IDS = 1000


def _plans_ctx() -> dict:
    month = rc.this_month()
    c, cfg = client(), config()
    r = rc.parallel(plans=lambda: accounts.list_plans(c, cfg), users=lambda: rc.quota_rows(c, cfg, month))
    return {"plans": r["plans"], "users": r["users"][:PLANS_PAGE_USERS], "users_total": len(r["users"]),
            "user_ids": [u["user_id"] for u in r["users"][:PLANS_PAGE_USER_IDS]], "month": month.as_dict()}


@bp.route("/")
@requires("ops")
def index():
    return redirect(url_for("admin.plans"))


@bp.route("/plans", methods=["GET", "POST"])
@requires("ops")
def plans():
    if request.method == "POST":
        f = request.form
        try:
            if f.get("action") == "assign":
                row = accounts.upsert_user(client(), config(), f.get("user_id", ""), plan=f.get("plan", ""),
                                           display_name=f.get("display_name") or None, email=f.get("email") or None)
                flash(f"{row['user_id']} is on plan {row['plan'] or '(none)'}.")
            else:
                row = accounts.set_plan(client(), config(), f.get("plan", ""), quota=f.get("quota", ""),
                                        warn_at_percent=f.get("warn_at_percent") or 80,
                                        display_name=f.get("display_name", ""))
                flash(f"Plan {row['plan']} saved: {row['monthly_token_quota']:,} tokens a month.")
        except accounts.InvalidInput as exc:
            return _admin_page("admin_plans.html", _plans_ctx(), str(exc), 422)
        return redirect(url_for("admin.plans"), code=303)
    return _admin_page("admin_plans.html", _plans_ctx())


@bp.route("/prices", methods=["GET", "POST"])
@requires("ops")
def prices():
    def ctx():
        d = rc.today()
        window = rc.Period("30d", "Last 30 days", d - timedelta(days=29), d + timedelta(days=1))
        return {"prices": accounts.list_prices(client(), config()),
                "unpriced_models": rc.q(client(), config(), "unpriced_models", start=window.start, end=window.end)}

    if request.method == "POST":
        f = request.form
        try:
            row = accounts.set_price(client(), config(), f.get("model", ""), usd_per_1m_input=f.get("usd_per_1m_input", ""),
                                     usd_per_1m_output=f.get("usd_per_1m_output", ""))
        except accounts.InvalidInput as exc:
            # The form comes back as it was typed, so that one wrong field does not cost the others.
            kept = {k: f.get(k, "")[:200] for k in ("model", "usd_per_1m_input", "usd_per_1m_output")}
            return _admin_page("admin_prices.html", ctx() | {"form": kept}, str(exc), 422)
        flash(f"Price of {row['model']} saved; every report uses it from now on, for past usage too.")
        return redirect(url_for("admin.prices"), code=303)
    return _admin_page("admin_prices.html", ctx())


@bp.route("/tokens", methods=["GET", "POST"])
@requires("ops")
def tokens():
    def ctx():
        return {"tokens": auth.list_tokens(client(), config()), "new_token": None}

    if request.method == "POST":
        f = request.form
        try:
            if f.get("action") == "revoke":
                t = auth.revoke_token(client(), config(), f.get("token_hash", ""))
                flash(f"Token {t['token_hash'][:12]}… of {t['user_id']} revoked.")
                return redirect(url_for("admin.tokens"), code=303)
            days = accounts.parse_int(f.get("expires_days") or 0, "expiry (days)", minimum=0, maximum=3650)
            scope = f.get("scope", "user")
            owner = f.get("owner", "").strip()
            if scope == "user":
                accounts.check_name(owner, "a user id")
            token, digest = auth.create_token(client(), config(), scope=scope, owner=owner, name=f.get("name", ""),
                                              expires_in=timedelta(days=days) if days else None)
        except (accounts.InvalidInput, auth.AuthError) as exc:
            return _admin_page("admin_tokens.html", ctx(), str(exc), 422)
        c = ctx()
        # Shown once, in this response only; it is stored as a hash.
        c["new_token"] = {"token": token, "token_hash": digest, "scope": scope, "owner": owner}
        return _admin_page("admin_tokens.html", c, status=201)
    return _admin_page("admin_tokens.html", ctx())


@bp.route("/quotas", methods=["GET", "POST"])
@requires("ops")
def quotas():
    from swarmlens.notify import channels as notify_channels

    if request.method == "POST":
        f = request.form
        try:
            if f.get("action") == "delete_channel":
                ch = notify_channels.delete_channel(client(), config(), f.get("name", ""))
                flash(f"Channel {ch.name} deleted.")
            else:
                kind = f.get("kind", "")
                existing = notify_channels.get_channel(client(), config(), f.get("name", "").strip())
                ch = notify_channels.set_channel(client(), config(), f.get("name", ""), kind=kind,
                                                 target=f.get("target", ""), plan=f.get("plan", ""),
                                                 secret=f.get("secret") or None, alerts=bool(f.get("alerts")),
                                                 reports=bool(f.get("reports")))
                flash(f"Channel {ch.name} saved.")
                if ch.kind == "webhook" and not f.get("secret") and not (existing and existing.secret == ch.secret):
                    # Shown once, in this response only: the receiver needs it to check signatures.
                    return _admin_page("admin_quotas.html", {**_quotas_ctx(), "new_secret": (ch.name, ch.secret)},
                                       status=201)
        except accounts.InvalidInput as exc:
            return _admin_page("admin_quotas.html", {**_quotas_ctx(), "form": request.form}, str(exc), 422)
        return redirect(url_for("admin.quotas"), code=303)
    return _admin_page("admin_quotas.html", _quotas_ctx())


def _quotas_ctx() -> dict:
    from swarmlens.notify import channels as notify_channels
    from swarmlens.notify import claims

    month = rc.this_month()
    c, cfg = client(), config()
    got = rc.parallel(rows=lambda: rc.quota_rows(c, cfg, month), chans=lambda: notify_channels.list_channels(c, cfg),
                      log=lambda: claims.recent(c, cfg, 100), plans=lambda: accounts.list_plans(c, cfg))
    rows = got["rows"]
    over = [r for r in rows if r["level"] == "over"]
    for r in over:
        # The overage at the user's own average price this month; unknown (shown "–", never "$0.00")
        # while their tokens have no price.
        r["overage_cost_usd"] = r["cost_usd"] * r["overage_tokens"] / r["tokens"] if r["tokens"] and r["cost_usd"] else None
    over.sort(key=lambda r: -r["overage_tokens"])
    warn = sorted((r for r in rows if r["level"] == "warn"), key=lambda r: -(r["percent"] or 0))
    return {"month": month.as_dict(), "over": over, "warn": warn, "no_plan": [r["user_id"] for r in rows if not r["plan"]],
            "channels": [{"name": ch.name, "plan": ch.plan, "kind": ch.kind, "target": ch.shown_target(),
                          "alerts": ch.alerts, "reports": ch.reports} for ch in got["chans"]],
            "deliveries": got["log"], "plans": [p["plan"] for p in got["plans"]],
            "next_reports": {"month": month.label, "on": rc.add_months(month.start, 1).isoformat()}, "new_secret": None, "form": {}}
