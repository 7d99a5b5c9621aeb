"""Reuse of query results while the data is unchanged (store/readcache.py): a page read twice asks
the server once; any write, by insert or mutation, shows at once; a merge does not count as a
change; requests that miss together compute once; memory and age stay within their settings; and
a database holding a table outside MergeTree turns reuse off. Real engine, real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from swarmlens_testing.polling import wait_until
from swarmlens_testing.spans import Stretch, insert_spans, task_spans


def _cache(app):
    return app.extensions["swarmlens_read_cache"]


def test_a_page_read_twice_asks_the_server_once(app, seeded, h):
    c = app.test_client()
    token = seeded.tokens["alice"]
    first = c.get("/api/v1/users/alice/tasks?limit=5", headers=h.bearer(token))
    assert first.status_code == 200
    before = _cache(app).stats()
    again = c.get("/api/v1/users/alice/tasks?limit=5", headers=h.bearer(token))
    after = _cache(app).stats()
    assert again.get_json() == first.get_json()
    # Every query of the second request (the token check and the history) came from memory.
    assert after["hits"] >= before["hits"] + 2
    assert after["misses"] == before["misses"]


def test_a_new_task_shows_at_once_and_other_users_pages_never_mix(app, seeded, h):
    c = app.test_client()
    alice, bob = h.bearer(seeded.tokens["alice"]), h.bearer(seeded.tokens["bob"])
    path = "/api/v1/users/alice/tasks?limit=200"
    ids_before = {t["task_id"] for t in c.get(path, headers=alice).get_json()["tasks"]}
    bob_before = c.get("/api/v1/users/bob/tasks?limit=200", headers=bob).get_json()
    assert not ids_before & {t["task_id"] for t in bob_before["tasks"]}

    trace = uuid.uuid4().hex
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    insert_spans(seeded.client, task_spans(user_id="alice", task_id=trace, start=start,
                                           stretches=[Stretch("Triage Agent")], input="cache freshness check"),
                 database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    # The write is complete when insert returns (the views run in the same insert), so the very
    # next request must see it: no waiting, no polling.
    ids_after = {t["task_id"] for t in c.get(path, headers=alice).get_json()["tasks"]}
    assert trace in ids_after and ids_before < ids_after
    # Bob's answer is his own, whatever Alice's requests left in memory.
    assert c.get("/api/v1/users/bob/tasks?limit=200", headers=bob).get_json() == bob_before


def test_new_spans_leave_results_of_other_tables_reusable(app, seeded, h):
    c = app.test_client()
    alice = h.bearer(seeded.tokens["alice"])
    path = "/api/v1/users/alice/tasks?limit=3"
    c.get(path, headers=alice)
    insert_spans(seeded.client, task_spans(user_id="alice", stretches=[Stretch("Triage Agent")]),
                 database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    before = _cache(app).stats()
    newest = c.get(path, headers=alice).get_json()["tasks"][0]
    after = _cache(app).stats()
    # The token check reads api_tokens only: reused. The history reads the new task: computed.
    assert after["hits"] == before["hits"] + 1 and after["misses"] > before["misses"]
    assert newest["task_id"] == seeded.raw(
        "SELECT TraceId FROM {otel:Identifier}.otel_traces WHERE SpanAttributes['enduser.id'] = 'alice' "
        "AND ParentSpanId = '' ORDER BY Timestamp DESC LIMIT 1")[0][0]


def test_which_tables_a_query_reads(seeded):
    from swarmlens.store import readcache
    from swarmlens.store.client import read_query

    cache = readcache.ReadCache(1 << 20, 60)
    cache.version(seeded.client, seeded.config)
    db, otel = seeded.config["SWARMLENS_DATABASE"], seeded.config["SWARMLENS_OTEL_DATABASE"]
    assert cache.tables_of(read_query("tasks_by_user"), seeded.config) == tuple(sorted(
        [f"{db}.tasks_daily", f"{db}.chat_usage_daily", f"{db}.model_prices"]))
    assert cache.tables_of(read_query("token_lookup"), seeded.config) == (f"{db}.api_tokens",)
    # A view over other tables, or a table named another way: keyed on every table.
    assert cache.tables_of("SELECT * FROM {db:Identifier}.trace_spans", seeded.config) is None
    assert cache.tables_of(f"SELECT * FROM {otel}.otel_traces", seeded.config) is None


def test_a_mutation_changes_the_version_and_a_merge_does_not(seeded):
    from swarmlens.store import readcache

    db = seeded.config["SWARMLENS_DATABASE"]
    cache = readcache.ReadCache(1 << 20, 60)
    v0 = cache.version(seeded.client, seeded.config)
    assert v0 is not None
    seeded.client.command(f"OPTIMIZE TABLE `{db}`.tasks_daily FINAL")
    seeded.client.command(f"OPTIMIZE TABLE `{db}`.tasks FINAL")
    assert cache.version(seeded.client, seeded.config) == v0, "a merge changed no data"
    seeded.client.command(f"ALTER TABLE `{db}`.feedback UPDATE comment = comment WHERE 0 SETTINGS mutations_sync = 2")
    v1 = cache.version(seeded.client, seeded.config)
    assert v1 != v0, "a mutation must count as a change"
    seeded.client.command(f"DELETE FROM `{db}`.feedback WHERE task_id = 'no such task'")
    assert cache.version(seeded.client, seeded.config) != v1


def test_a_password_change_ends_a_session_whose_check_was_in_memory(app, seeded, h):
    from swarmlens import auth

    OPS_LOGIN, OPS_PASSWORD, login = h.OPS_LOGIN, h.OPS_PASSWORD, h.login
    c = app.test_client()
    assert login(c).status_code == 302
    assert c.get("/users").status_code == 200
    before = _cache(app).stats()
    assert c.get("/users").status_code == 200
    assert _cache(app).stats()["hits"] > before["hits"], "the session check came from memory"
    auth.set_ops_password(seeded.client, seeded.config, OPS_LOGIN, OPS_PASSWORD + "!", create=False)
    try:
        # The account's new generation is a new part: the old cookie is refused on the next request.
        r = c.get("/users")
        assert r.status_code == 302 and "/login" in r.headers["Location"]
    finally:
        auth.set_ops_password(seeded.client, seeded.config, OPS_LOGIN, OPS_PASSWORD, create=False)


def test_a_write_request_reads_from_the_server(app, seeded):
    from swarmlens.store import readcache

    seen = []
    funcs = app.before_request_funcs[None]
    after_snapshot = [f.__name__ for f in funcs].index("_read_snapshot") + 1
    funcs.insert(after_snapshot, lambda: seen.append(readcache._current.get()))
    try:
        c = app.test_client()
        c.get("/login")
        c.post("/login", data={})
    finally:
        del funcs[after_snapshot]
    assert isinstance(seen[0], readcache.Snapshot) and seen[1] is None


def test_requests_that_miss_together_compute_once():
    from swarmlens.store import readcache

    cache = readcache.ReadCache(1 << 20, 60)
    cache._watchable = True
    calls, gate = [], threading.Event()

    class Result:
        column_names = ("n",)
        result_rows = [(42,)]

    def run():
        calls.append(1)
        gate.wait(5)
        return Result()

    got = []

    def reader():
        snap = readcache.Snapshot(cache, {"SWARMLENS_DATABASE": "d", "SWARMLENS_OTEL_DATABASE": "o"})
        snap._version = readcache.DataVersion({"d.t": 1})
        token = readcache.begin(snap)
        try:
            got.append(readcache.cached_query(None, "SELECT 42 AS n", {}, {}, run).result_rows)
        finally:
            readcache.end(token)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: calls, timeout=5, what="the first reader to start its query")
    time.sleep(0.2)  # the others are queued behind it now, or about to be
    gate.set()
    for t in threads:
        t.join(5)
    assert len(got) == 6 and all(list(r) == [(42,)] for r in got)
    assert len(calls) == 1, f"{len(calls)} computations of one result"


def test_memory_and_age_stay_within_their_settings():
    from swarmlens.store import readcache

    class Result:
        def __init__(self, n):
            self.column_names = ("v",)
            self.result_rows = [(f"{i:04d}" + "x" * 996,) for i in range(n)]  # distinct: pickle shares equal objects

    cache = readcache.ReadCache(64 << 10, 0.3)  # 64 KiB; one result at most 8 KiB
    for i in range(200):
        cache.put(("q", i), 1, Result(5))
        assert cache.stats()["bytes"] <= 64 << 10
    assert 0 < cache.stats()["entries"] < 200
    assert cache.get(("q", 0), 1) is None, "the oldest results went first"
    assert cache.get(("q", 199), 1) is not None
    cache.put(("big", 0), 1, Result(50))  # about 50 KB: more than an eighth, never kept
    assert cache.get(("big", 0), 1) is None
    wait_until(lambda: cache.get(("q", 199), 1) is None, timeout=5, what="the result to age out")
    assert cache.get(("q", 198), 2) is None, "another version is another result"


def test_a_table_outside_mergetree_turns_reuse_off(seeded, caplog):
    from swarmlens.store import readcache

    db = seeded.config["SWARMLENS_DATABASE"]
    seeded.client.command(f"CREATE TABLE `{db}`.scratch_memory (x UInt8) ENGINE = Memory")
    try:
        cache = readcache.ReadCache(1 << 20, 60)
        with caplog.at_level("WARNING", logger="swarmlens.store.readcache"):
            assert cache.version(seeded.client, seeded.config) is None
        assert not cache.enabled
        assert "scratch_memory (Memory)" in caplog.text
    finally:
        seeded.client.command(f"DROP TABLE `{db}`.scratch_memory")


@pytest.mark.parametrize("sql, reads", [
    ("SELECT 1", True), ("-- a note\n  select 1", True), ("/* x */ WITH 1 AS a SELECT a", True),
    ("INSERT INTO t SELECT 1", False), ("-- SELECT\nDELETE FROM t WHERE 1", False), ("SELECTX", False),
])
def test_only_statements_that_read_are_reused(sql, reads):
    from swarmlens.store import readcache

    assert readcache.is_read(sql) is reads
