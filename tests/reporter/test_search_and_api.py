"""Search filters and keyset pagination (pages and API), the JSON API with its error codes, and the
OpenAPI document: every API route documented, responses matching their schemas."""

from __future__ import annotations

from datetime import timedelta

import pytest

ROOT = "SpanName = 'invoke_workflow swarm'"


def raw_ids(seeded, where: str = "1", **params) -> list[str]:
    rows = seeded.raw(f"SELECT TraceId FROM {{otel:Identifier}}.otel_traces WHERE {ROOT} AND {where} "
                      "ORDER BY Timestamp DESC, TraceId DESC", **params)
    return [r[0] for r in rows]


def in_last_30_days(seeded):
    return {"s": seeded.day_ts(seeded.today - timedelta(days=29))}


def test_search_by_keyword_matches_whole_words_in_any_case(ops, seeded):
    want = raw_ids(seeded, "Timestamp >= {s:DateTime64(3)} AND (positionCaseInsensitive(SpanAttributes['swarm.task.input'], 'refund') > 0 "
                   "OR positionCaseInsensitive(SpanAttributes['swarm.task.output'], 'refund') > 0)", **in_last_30_days(seeded))
    d = ops.get("/search?q=REFUND&limit=500&format=json").get_json()
    assert [t["task_id"] for t in d["tasks"]] == want and want
    two = ops.get("/search?q=blue+kettle&limit=500&format=json").get_json()["tasks"]
    assert two and all("blue kettle" in t["input"] for t in two)
    assert ops.get("/search?q=kettle+laptop&format=json").get_json()["tasks"] == []  # all words must occur
    assert ops.get("/search?q=efun&format=json").get_json()["tasks"] == []  # words match from their start
    assert ops.get("/search?q=ref&format=json").get_json()["tasks"] == []  # short words match whole words
    html = ops.get("/search?q=refund").get_data(as_text=True)
    assert "Please <mark>refund</mark> my purchase" in html


def test_search_filters_by_user_agent_status_and_dates(ops, seeded):
    d = ops.get("/search?user=bob&agent=Billing+Agent&limit=500&format=json").get_json()
    want = raw_ids(seeded, "SpanAttributes['enduser.id'] = 'bob' AND has(JSONExtract(SpanAttributes['swarm.task.agents'], "
                   "'Array(String)'), 'Billing Agent') AND Timestamp >= {s:DateTime64(3)}", **in_last_30_days(seeded))
    assert [t["task_id"] for t in d["tasks"]] == want and want
    errors = ops.get("/search?status=error&limit=500&format=json").get_json()["tasks"]
    want = raw_ids(seeded, "StatusCode = 'Error' AND Timestamp >= {s:DateTime64(3)}", **in_last_30_days(seeded))
    assert [t["task_id"] for t in errors] == want and want
    day = seeded.today - timedelta(days=40)
    d = ops.get(f"/search?from={day}&to={day}&limit=500&format=json").get_json()
    want = raw_ids(seeded, "toDate(Timestamp) = {d:Date}", d=day)
    assert [t["task_id"] for t in d["tasks"]] == want and want


def test_search_rejects_bad_parameters(ops):
    for query in ("from=yesterday", "to=2026-13-01", "from=2026-03-02&to=2026-03-01", "status=broken", "limit=0",
                  "limit=abc", "cursor=@@@", "q=" + "x" * 300):
        r = ops.get(f"/search?{query}")
        assert r.status_code == 400, query
        assert ops.get(f"/search?{query}&format=json").get_json()["error"]["status"] == 400


def test_keyset_pagination_walks_every_task_once(ops, seeded):
    want = raw_ids(seeded, "SpanAttributes['enduser.id'] = 'alice'")
    seen, cursor, pages = [], None, 0
    while True:
        url = "/users/alice?limit=7&format=json" + (f"&cursor={cursor}" if cursor else "")
        d = ops.get(url).get_json()
        seen += [t["task_id"] for t in d["tasks"]]
        cursor, pages = d["next_cursor"], pages + 1
        if not cursor:
            break
    assert seen == want and pages == -(-len(want) // 7)
    # Search pages the same way.
    first = ops.get("/search?limit=5&format=json").get_json()
    second = ops.get(f"/search?limit=5&cursor={first['next_cursor']}&format=json").get_json()
    assert not {t["task_id"] for t in first["tasks"]} & {t["task_id"] for t in second["tasks"]}
    assert first["tasks"][-1]["start_time"] >= second["tasks"][0]["start_time"]
    assert "Older" in ops.get("/users/alice?limit=7").get_data(as_text=True)


# ---------------------------------------------------------------------------------------------
# API


def test_api_me_and_own_history(anon, seeded, h):
    alice = h.bearer(seeded.tokens["alice"])
    me = anon.get("/api/v1/me", headers=alice).get_json()
    assert me["kind"] == "user" and me["id"] == "alice" and me["quota"]["level"] == "warn"
    page = anon.get("/api/v1/me/tasks?limit=500", headers=alice).get_json()
    want = raw_ids(seeded, "SpanAttributes['enduser.id'] = 'alice' AND Timestamp >= {s:DateTime64(3)}",
                   **in_last_30_days(seeded))
    assert [t["task_id"] for t in page["tasks"]] == want
    compat = anon.get("/api/v1/tasks/history?limit=500", headers=alice).get_json()
    assert compat["tasks"] == page["tasks"]
    found = anon.get("/api/v1/me/tasks?q=laptop&limit=500", headers=alice).get_json()["tasks"]
    assert found and all("laptop" in t["input"] for t in found) and {t["user_id"] for t in found} == {"alice"}
    # ?user= is ignored for a user token: still alice's own tasks
    assert {t["user_id"] for t in anon.get("/api/v1/me/tasks?user=bob", headers=alice).get_json()["tasks"]} == {"alice"}


def test_api_task_detail_usage_and_foreign_tasks(anon, seeded, h):
    alice, bob = h.bearer(seeded.tokens["alice"]), h.bearer(seeded.tokens["bob"])
    task = seeded.task_ids["json"]
    d = anon.get(f"/api/v1/tasks/{task}", headers=alice).get_json()
    assert d["task_id"] == task and d["handoff_path"] == ["Triage Agent", "Sales Agent"] and d["spans"]
    u = anon.get(f"/api/v1/tasks/{task}/usage", headers=alice).get_json()
    assert sum(a["tokens"] for a in u["agents"]) == u["total_tokens"] == d["total_tokens"]
    for path in (f"/api/v1/tasks/{task}", f"/api/v1/tasks/{task}/usage", f"/api/v1/tasks/{task}/feedback"):
        r = anon.get(path, headers=bob)
        assert r.status_code == 404 and r.get_json()["error"]["message"] == "no such task"
    r = anon.get("/api/v1/tasks/0123456789abcdef0123456789abcdef", headers=alice)
    assert r.status_code == 404
    ops = h.bearer(seeded.tokens["ops"])
    assert anon.get(f"/api/v1/tasks/{task}", headers=ops).status_code == 200
    assert anon.get("/api/v1/users/bob/tasks", headers=ops).get_json()["tasks"]


def test_api_feedback_latest_vote_wins(anon, seeded, h):
    alice = h.bearer(seeded.tokens["alice"])
    task = seeded.task_ids["json"]
    r = anon.post(f"/api/v1/tasks/{task}/feedback", json={"vote": "down", "comment": "wrong order"}, headers=alice)
    assert r.status_code == 201 and r.get_json()["vote"] == -1
    r = anon.post(f"/api/v1/tasks/{task}/feedback", json={"vote": 1, "comment": "fixed now"}, headers=alice)
    assert r.status_code == 201
    got = anon.get(f"/api/v1/tasks/{task}/feedback", headers=alice).get_json()["feedback"]
    assert [(f["user_id"], f["vote"], f["comment"]) for f in got] == [("alice", 1, "fixed now")]
    (n,), = seeded.client.query("SELECT count() FROM {db:Identifier}.feedback FINAL WHERE task_id = {t:String}",
                                parameters={"db": seeded.config["SWARMLENS_DATABASE"], "t": task}).result_rows
    assert n == 1


@pytest.mark.parametrize("body, kwargs, status", [
    (None, {"data": "not json", "content_type": "application/json"}, 400),
    (None, {"data": "[1, 2]", "content_type": "application/json"}, 400),
    ({"vote": "sideways"}, {}, 422),
    ({"vote": True}, {}, 422),
    ({"vote": "up", "comment": 5}, {}, 422),
    ({"vote": "up", "comment": "x" * 2001}, {}, 422),
    ({"vote": "up", "extra": 1}, {}, 422),
    (None, {"data": "{\"vote\": \"up\", \"comment\": \"" + "x" * 70000 + "\"}", "content_type": "application/json"}, 413),
])
def test_api_feedback_errors(anon, seeded, h, body, kwargs, status):
    task = seeded.task_ids["json"]
    r = anon.post(f"/api/v1/tasks/{task}/feedback", headers=h.bearer(seeded.tokens["alice"]),
                  **({"json": body} if body is not None else kwargs))
    assert r.status_code == status
    assert r.is_json and r.get_json()["error"]["status"] == status


def test_api_errors_are_json(anon, seeded, h):
    alice = h.bearer(seeded.tokens["alice"])
    r = anon.delete(f"/api/v1/tasks/{seeded.task_ids['json']}", headers=alice)
    assert r.status_code == 405 and r.get_json()["error"]["status"] == 405 and "GET" in r.headers["Allow"]
    r = anon.get("/api/v1/nothing-here", headers=alice)
    assert r.status_code == 404 and r.is_json
    r = anon.get("/api/v1/me/tasks?limit=100000", headers=alice)
    assert r.status_code == 400 and "limit" in r.get_json()["error"]["message"]
    r = anon.get("/api/v1/me/usage?period=forever", headers=alice)
    assert r.status_code == 400


def test_api_ignores_the_browser_session(ops):
    # An ops browser session must not act on the API (no CSRF there): bearer tokens only.
    assert ops.get("/api/v1/me").status_code == 401


def test_api_usage_matches_the_page(anon, ops, seeded, h):
    u = anon.get("/api/v1/me/usage?period=30d", headers=h.bearer(seeded.tokens["bob"])).get_json()
    page = ops.get("/users/bob?format=json").get_json()
    assert u["usage"]["tasks"] == page["figures_30d"]["tasks"] and u["quota"]["level"] == "over"


# ---------------------------------------------------------------------------------------------
# OpenAPI


def _resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        path = node["$ref"].lstrip("#/").split("/")
        node = doc
        for p in path:
            node = node[p]
    return node


def _check(doc, schema, value, where="$"):
    """A small validator for the subset of JSON Schema the document uses."""
    schema = _resolve(doc, schema)
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                _check(doc, option, value, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: matches no oneOf option: {errors}")
    types = schema.get("type")
    if types:
        types = types if isinstance(types, list) else [types]
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = any((t == "integer" and isinstance(value, int) and not isinstance(value, bool))
                 or (t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
                 or (t in kinds and isinstance(value, kinds[t])) for t in types)
        assert ok, f"{where}: {value!r:.60} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check(doc, sub, value[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:20]):
            _check(doc, schema["items"], item, f"{where}[{i}]")


def test_openapi_document_is_valid_and_covers_every_route(app, anon):
    doc = anon.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    documented = {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<path:user_id>", "{user_id}").replace("<task_id>", "{task_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (path, method)
            for p in op.get("parameters", []):
                assert p["in"] in ("query", "path") and "schema" in p
                if p["in"] == "path":
                    assert "{" + p["name"] + "}" in path and p["required"]
            for code, resp in op["responses"].items():
                _resolve(doc, resp)  # every $ref resolves
                assert code.isdigit()


def test_api_responses_match_their_schemas(anon, seeded, h):
    doc = anon.get("/api/v1/openapi.json").get_json()
    task = seeded.task_ids["handoff"]
    alice, bob, ops = (h.bearer(seeded.tokens[k]) for k in ("alice", "bob", "ops"))
    calls = [
        ("get", "/api/v1/me", "/api/v1/me", alice, None),
        ("get", "/api/v1/me", "/api/v1/me", ops, None),
        ("get", "/api/v1/me/tasks", "/api/v1/me/tasks", alice, None),
        ("get", "/api/v1/me/usage", "/api/v1/me/usage", alice, None),
        ("get", "/api/v1/tasks/history", "/api/v1/tasks/history?user_id=bob", ops, None),
        ("get", "/api/v1/users/{user_id}/tasks", "/api/v1/users/bob/tasks", ops, None),
        ("get", "/api/v1/users/{user_id}/usage", "/api/v1/users/bob/usage", bob, None),
        ("get", "/api/v1/tasks/{task_id}", f"/api/v1/tasks/{task}", bob, None),
        ("get", "/api/v1/tasks/{task_id}/usage", f"/api/v1/tasks/{task}/usage", bob, None),
        ("get", "/api/v1/tasks/{task_id}/feedback", f"/api/v1/tasks/{task}/feedback", ops, None),
        ("post", "/api/v1/tasks/{task_id}/feedback", f"/api/v1/tasks/{task}/feedback", bob, {"vote": "up"}),
        ("get", "/api/v1/tasks/{task_id}", f"/api/v1/tasks/{task}", alice, None),
        ("get", "/api/v1/me", "/api/v1/me", {}, None),
    ]
    for method, template, url, headers, body in calls:
        r = getattr(anon, method)(url, headers=headers, json=body)
        responses = doc["paths"][template][method]["responses"]
        assert str(r.status_code) in responses, f"{method} {url}: {r.status_code} not documented"
        schema = _resolve(doc, responses[str(r.status_code)])["content"]["application/json"]["schema"]
        _check(doc, schema, r.get_json(), f"{method} {url}")
