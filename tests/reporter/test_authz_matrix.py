"""The authorization matrix, generated: every rule of the app's url_map x every method it takes x
{anonymous, user A (alice), user B (bob), ops}.

Each endpoint has a class in POLICY, and the class alone decides what each principal must get, so
a new route is covered the day it is added; a route without a class fails the suite until someone
decides who may use it. Routes naming a user or a task are requested for A's and for B's, and no
response A gets may hold B's data: B's task ids, or the agent only B runs.
"""

from __future__ import annotations

import re

import pytest

ANON, A, B, OPS = "anon", "alice", "bob", "ops"
PRINCIPALS = (ANON, A, B, OPS)

# public: anyone, no sign-in; login: the sign-in page; logout: anyone, always back to /login;
# ops: ops only; any: any signed-in principal, scoped to what they may see; user: an end user's
# own view, which an ops principal has none of (403); own: a user's or a task's own resource (A may
# use A's, never B's; ops may use any).
POLICY = {
    "static": "public", "health.healthz": "public", "health.readyz": "public", "api.openapi": "public",
    "docs.api_reference": "public", "search.search_csv": "any", "users.user_history_csv": "own",
    "reports.custom": "ops",
    "auth.login": "login", "auth.logout": "logout",
    "dashboard.dashboard": "any", "users.me": "any", "search.search": "any",
    "api.me": "any", "api.tasks_history": "any", "api.my_tasks": "user", "api.my_usage": "user",
    "users.user_page": "own", "users.user_pdf": "own", "tasks.task_page": "own", "tasks.task_feedback": "own",
    "tasks.task_pdf": "own", "api.user_tasks": "own", "api.user_usage": "own", "api.task_detail": "own",
    "api.task_usage": "own", "api.task_feedback": "own",
    "users.users_list": "ops", "reports.index": "ops", "reports.weekly": "ops", "reports.monthly": "ops",
    "reports.usage_csv": "ops", "reports.usage_pdf": "ops", "agents.agents": "ops", "feedback.feedback_list": "ops",
    "admin.index": "ops", "admin.plans": "ops", "admin.prices": "ops", "admin.tokens": "ops", "admin.quotas": "ops",
}


def _fill(rule, owner: str, seeded) -> str:
    task = seeded.tasks_by_user[owner][-1] if owner == A else seeded.task_ids["billing"]
    values = {"user_id": owner, "task_id": task, "kind": "monthly", "filename": "style.css"}
    path = rule.rule
    for arg in rule.arguments:
        path = re.sub(r"<[^>]*?\b" + arg + ">", values[arg], path)
    return path


def requests_of(app, seeded):
    """(endpoint, class, method, path, owner) for every rule and method; owner is A or B for
    routes naming a user or a task, None otherwise."""
    out = []
    for rule in app.url_map.iter_rules():
        kind = POLICY.get(rule.endpoint)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if rule.arguments - {"filename", "kind"}:
                for owner in (A, B):
                    out.append((rule.endpoint, kind, method, _fill(rule, owner, seeded), owner))
            else:
                out.append((rule.endpoint, kind, method, _fill(rule, A, seeded), None))
    return out


def test_every_route_is_classified(app):
    missing = sorted({r.endpoint for r in app.url_map.iter_rules()} - set(POLICY))
    assert missing == [], f"routes without an authorization class in POLICY: {missing}"
    assert sorted(set(POLICY) - {r.endpoint for r in app.url_map.iter_rules()}) == [], "POLICY names gone routes"


def _client(app, who, h):
    c = app.test_client()
    if who == OPS:
        assert h.login(c).status_code == 302
    return c


def _send(c, who, method, path, seeded, h):
    headers = {}
    if who in (A, B):
        headers = h.bearer(seeded.tokens[who])
    elif who == OPS and path.startswith("/api/"):
        headers = h.bearer(seeded.tokens["ops"])
    data = {}
    if method == "POST" and who == OPS and not path.startswith("/api/"):
        data["csrf_token"] = h.csrf_of(c, "/admin/plans")
    return c.open(path, method=method, headers=headers, data=data)


def _allowed(status: int) -> bool:
    # Let in: success, a redirect, or a complaint about the (empty) input; never 401, 403 or 404.
    return status < 400 or status in (400, 422)


def _verdict(kind, who, owner, status, location) -> str | None:
    if status >= 500:
        return f"server error {status}"
    if kind == "public" or kind == "logout":
        return None if status < 400 else f"{status} on a public route"
    if kind == "login":
        return None if status in (200, 302, 400, 401) else f"{status} on /login"
    if who == ANON:
        if status == 401 or (status == 302 and "/login" in location):
            return None
        return f"anonymous got {status}"
    if kind == "ops":
        if who == OPS:
            return None if _allowed(status) else f"ops refused with {status}"
        return None if status == 403 else f"a user got {status} on an ops route"
    if kind == "user" and who == OPS:
        return None if status == 403 else f"ops got {status} on an end user's own view"
    if kind == "own" and who in (A, B) and owner is not None and owner != who:
        return None if status in (403, 404) else f"{who} reached {owner}'s resource ({status})"
    return None if _allowed(status) else f"refused with {status}"


@pytest.mark.parametrize("who", PRINCIPALS)
def test_authorization_matrix(app, seeded, h, who):
    c = _client(app, who, h)
    failures, b_tasks = [], set(seeded.tasks_by_user[B])
    rows = requests_of(app, seeded)
    # Signing out last: it ends the session the other rows use.
    rows.sort(key=lambda r: r[1] == "logout")
    for endpoint, kind, method, path, owner in rows:
        r = _send(c, who, method, path, seeded, h)
        why = _verdict(kind, who, owner, r.status_code, r.headers.get("Location", ""))
        if why:
            failures.append(f"{who} {method} {path} [{endpoint}: {kind}]: {why}")
        if who == A and r.status_code == 200 and r.mimetype in ("text/html", "application/json", "text/csv"):
            body = r.get_data(as_text=True)
            leaked = sorted(t for t in b_tasks if t in body)
            if leaked or "Billing Agent" in body:
                failures.append(f"{who} {method} {path}: B's data leaked ({leaked[:2]} / Billing Agent)")
    assert failures == []
