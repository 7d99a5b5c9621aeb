"""Who sees what: anonymous, user A (alice), user B (bob) and ops on every route; sign-in, CSRF,
sessions, token revocation. A user never sees another user's tasks: a foreign task is a 404."""

from __future__ import annotations

import re

import pytest

ANON, ALICE, BOB, OPS = "anon", "alice", "bob", "ops"


def matrix(s) -> list[tuple[str, str, dict[str, int]]]:
    """(method, path, expected status per principal). Alice's task and page are 'own' for alice."""
    a_task, b_task = s.tasks_by_user["alice"][-1], s.task_ids["billing"]
    login_redirect = 302
    rows = [
        ("GET", "/", {ANON: login_redirect, ALICE: 302, BOB: 302, OPS: 200}),
        ("GET", "/me", {ANON: login_redirect, ALICE: 302, BOB: 302, OPS: 302}),
        ("GET", "/login", {ANON: 200, ALICE: 302, BOB: 302, OPS: 302}),
        ("GET", "/users", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/users/alice", {ANON: login_redirect, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", "/users/alice/report.pdf", {ANON: login_redirect, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", "/users/alice/history.csv", {ANON: login_redirect, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", "/search", {ANON: login_redirect, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/search.csv", {ANON: login_redirect, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/docs/api", {ANON: 200, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", f"/tasks/{a_task}", {ANON: login_redirect, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", f"/tasks/{b_task}", {ANON: login_redirect, ALICE: 404, BOB: 200, OPS: 200}),
        ("GET", f"/tasks/{a_task}/report.pdf", {ANON: login_redirect, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", "/reports/", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 302}),
        ("GET", "/reports/weekly", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/reports/monthly", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/reports/monthly.csv", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/reports/weekly.pdf", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", f"/reports/custom?from={s.today}&to={s.today}", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/agents", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/feedback", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/admin/", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 302}),
        ("GET", "/admin/plans", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/admin/prices", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/admin/tokens", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("GET", "/admin/quotas", {ANON: login_redirect, ALICE: 403, BOB: 403, OPS: 200}),
        ("POST", "/admin/plans", {ANON: 401, ALICE: 403, BOB: 403, OPS: 422}),
        ("POST", "/admin/prices", {ANON: 401, ALICE: 403, BOB: 403, OPS: 422}),
        ("POST", "/admin/tokens", {ANON: 401, ALICE: 403, BOB: 403, OPS: 422}),
        ("POST", f"/tasks/{a_task}/feedback", {ANON: 401, ALICE: 422, BOB: 404, OPS: 422}),
        ("POST", "/logout", {ANON: 302, ALICE: 302, BOB: 302, OPS: 302}),
        ("GET", "/api/v1/openapi.json", {ANON: 200, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/healthz", {ANON: 200, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/readyz", {ANON: 200, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/api/v1/me", {ANON: 401, ALICE: 200, BOB: 200, OPS: 200}),
        ("GET", "/api/v1/me/tasks", {ANON: 401, ALICE: 200, BOB: 200, OPS: 403}),
        ("GET", "/api/v1/me/usage", {ANON: 401, ALICE: 200, BOB: 200, OPS: 403}),
        ("GET", "/api/v1/tasks/history", {ANON: 401, ALICE: 200, BOB: 200, OPS: 400}),
        ("GET", "/api/v1/tasks/history?user_id=alice", {ANON: 401, ALICE: 200, BOB: 403, OPS: 200}),
        ("GET", "/api/v1/users/alice/tasks", {ANON: 401, ALICE: 200, BOB: 403, OPS: 200}),
        ("GET", "/api/v1/users/alice/usage", {ANON: 401, ALICE: 200, BOB: 403, OPS: 200}),
        ("GET", f"/api/v1/tasks/{a_task}", {ANON: 401, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", f"/api/v1/tasks/{a_task}/usage", {ANON: 401, ALICE: 200, BOB: 404, OPS: 200}),
        ("GET", f"/api/v1/tasks/{a_task}/feedback", {ANON: 401, ALICE: 200, BOB: 404, OPS: 200}),
        ("POST", f"/api/v1/tasks/{a_task}/feedback", {ANON: 401, ALICE: 400, BOB: 404, OPS: 400}),
    ]
    return rows


def _request(client, method, path, who, seeded, h):
    headers = h.bearer(seeded.tokens[who]) if who in (ALICE, BOB) else {}
    if who == OPS and path.startswith("/api/"):
        headers = h.bearer(seeded.tokens["ops"])  # the API takes bearer tokens only, no cookies
    if method == "GET":
        return client.get(path, headers=headers)
    data = {}
    if who == OPS:
        data["csrf_token"] = h.csrf_of(client, "/admin/plans")
    return client.post(path, headers=headers, data=data)


def test_every_route_is_in_the_matrix(app, seeded):
    covered = {re.sub(r"\?.*", "", p) for _, p, _ in matrix(seeded)}
    a_task = seeded.tasks_by_user["alice"][-1]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        sample = (rule.rule.replace("<path:user_id>", "alice").replace("<user_id>", "alice")
                  .replace("<task_id>", a_task))
        sample = re.sub(r"<any\([^)]*\):kind>", "weekly", sample)
        variants = {sample, sample.replace("weekly", "monthly")}
        assert variants & covered, f"route {rule.rule} has no row in the auth matrix"


@pytest.mark.parametrize("who", [ANON, ALICE, BOB, OPS])
def test_auth_matrix(app, seeded, h, who):
    client = app.test_client()
    if who == OPS:
        assert h.login(client).status_code == 302
    failures = []
    for method, path, expected in matrix(seeded):
        if method == "POST" and path == "/logout" and who == OPS:
            continue  # would sign the rest of the matrix out; covered below
        r = _request(client, method, path, who, seeded, h)
        if r.status_code != expected[who]:
            failures.append(f"{who} {method} {path}: {r.status_code}, expected {expected[who]}")
        if path.startswith("/api/") and r.status_code >= 400:
            assert r.is_json and r.get_json()["error"]["status"] == r.status_code, path
        if who == ANON and r.status_code == 302 and method == "GET" and path not in ("/logout",):
            assert "/login?next=" in r.headers["Location"], path
    assert failures == []


def test_redirects_take_users_to_their_own_page(app, seeded, h):
    c = app.test_client()
    r = c.get("/", headers=h.bearer(seeded.tokens["alice"]))
    assert r.headers["Location"].endswith("/users/alice")


def test_anonymous_json_gets_401_with_bearer_challenge(anon):
    r = anon.get("/users?format=json")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = anon.get("/api/v1/me")
    assert r.status_code == 401 and r.get_json()["error"]["title"] == "Sign-in required"


def test_bad_tokens_are_refused(anon, seeded):
    for header in ("Bearer slk_not-a-real-token", "Basic YWxpY2U6cGFzcw==", "Bearer ", "Bearer " + "x" * 500):
        r = anon.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.is_json


def test_ops_sign_in_with_wrong_password_fails_and_session_works(app, h):
    c = app.test_client()
    r = h.login(c, password="wrong password")
    assert r.status_code == 401 and "Wrong login or password" in r.get_data(as_text=True)
    r = h.login(c, login="nobody")
    assert r.status_code == 401
    assert c.get("/").status_code == 302
    assert h.login(c).status_code == 302
    assert c.get("/").status_code == 200
    cookie = c.get_cookie("swarmlens_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    csrf = h.csrf_of(c, "/users")
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert c.get("/").status_code == 302


def test_login_redirects_only_to_local_paths(app, h):
    c = app.test_client()
    csrf = h.csrf_of(c)
    r = c.post("/login", data={"csrf_token": csrf, "mode": "ops", "login": h.OPS_LOGIN, "password": h.OPS_PASSWORD,
                               "next": "//evil.example/x"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    c2 = app.test_client()
    csrf = h.csrf_of(c2)
    r = c2.post("/login", data={"csrf_token": csrf, "mode": "ops", "login": h.OPS_LOGIN, "password": h.OPS_PASSWORD,
                                "next": "/agents?period=7d"})
    assert r.headers["Location"] == "/agents?period=7d"


def test_forms_need_the_csrf_token(app, ops, seeded, h):
    task = seeded.tasks_by_user["carol"][0]
    r = ops.post(f"/tasks/{task}/feedback", data={"vote": "up"})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    r = ops.post(f"/tasks/{task}/feedback", data={"vote": "up", "csrf_token": "forged"})
    assert r.status_code == 400
    c = app.test_client()
    r = c.post("/login", data={"mode": "ops", "login": h.OPS_LOGIN, "password": h.OPS_PASSWORD})
    assert r.status_code == 400  # no CSRF token on the sign-in form either
    r = ops.post(f"/tasks/{task}/feedback", data={"vote": "up", "csrf_token": h.csrf_of(ops, "/users")})
    assert r.status_code == 303


def test_end_user_signs_in_with_token_and_sees_only_their_own(app, seeded, h):
    c = app.test_client()
    csrf = h.csrf_of(c)
    r = c.post("/login", data={"csrf_token": csrf, "mode": "token", "token": seeded.tokens["bob"]})
    assert r.status_code == 302
    assert c.get("/users/bob").status_code == 200
    assert c.get("/users/alice").status_code == 404
    assert c.get(f"/tasks/{seeded.task_ids['xss']}").status_code == 404
    page = c.get("/search?format=json").get_json()
    assert {t["user_id"] for t in page["tasks"]} == {"bob"}
    # ?user= cannot widen a user's search
    page = c.get("/search?user=alice&format=json").get_json()
    assert {t["user_id"] for t in page["tasks"]} == {"bob"}
    assert c.get("/agents").status_code == 403
    r = c.post("/login", data={"csrf_token": h.csrf_of(c, "/users/bob"), "mode": "token", "token": "slk_wrong"})
    assert r.status_code == 401


def test_revoked_and_expired_tokens_stop_working(app, seeded, h):
    from datetime import timedelta

    from swarmlens import auth

    token, digest = auth.create_token(seeded.client, seeded.config, scope="user", owner="carol", name="temp")
    c = app.test_client()
    assert c.get("/api/v1/me", headers=h.bearer(token)).get_json()["id"] == "carol"
    # A browser session signed in with it ends too.
    csrf = h.csrf_of(c)
    c.post("/login", data={"csrf_token": csrf, "mode": "token", "token": token})
    assert c.get("/users/carol").status_code == 200
    auth.revoke_token(seeded.client, seeded.config, digest[:10])
    assert c.get("/api/v1/me", headers=h.bearer(token)).status_code == 401
    assert c.get("/users/carol").status_code == 302
    expired, _ = auth.create_token(seeded.client, seeded.config, scope="user", owner="carol",
                                   expires_in=timedelta(seconds=-1))
    assert c.get("/api/v1/me", headers=h.bearer(expired)).status_code == 401


def test_secrets_are_stored_hashed(seeded):
    db = seeded.config["SWARMLENS_DATABASE"]
    rows = seeded.client.query("SELECT token_hash FROM {db:Identifier}.api_tokens", parameters={"db": db}).result_rows
    assert rows and all(re.fullmatch(r"[0-9a-f]{64}", r[0]) for r in rows)
    assert all(t not in str(rows) for t in seeded.tokens.values())
    (pw,), = seeded.client.query("SELECT password_hash FROM {db:Identifier}.ops_accounts FINAL",
                                 parameters={"db": db}).result_rows
    assert pw.startswith("scrypt:") and "correct horse" not in pw


def test_disabled_ops_account_is_signed_out(app, seeded, h):
    from swarmlens import auth

    auth.set_ops_password(seeded.client, seeded.config, "temp-ops", "a long password", create=True)
    c = app.test_client()
    assert h.login(c, "temp-ops", "a long password").status_code == 302
    assert c.get("/users").status_code == 200
    auth.set_ops_disabled(seeded.client, seeded.config, "temp-ops", True)
    assert c.get("/users").status_code == 302
    assert h.login(c, "temp-ops", "a long password").status_code == 401


def test_secret_key_is_generated_once_in_the_data_dir(tmp_path):
    from swarmlens import auth

    cfg = {"SWARMLENS_SECRET_KEY": "", "SWARMLENS_DATA_DIR": str(tmp_path)}
    first = auth.secret_key(cfg)
    assert len(first) == 64 and auth.secret_key(cfg) == first
    assert oct((tmp_path / "reporter_secret_key").stat().st_mode)[-3:] == "600"
    assert auth.secret_key({**cfg, "SWARMLENS_SECRET_KEY": "given"}) == "given"
