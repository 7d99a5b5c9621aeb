"""Materialized views over real HTTP: contract-shaped spans in, task/agent/rollup rows out; a retried
batch counted once; feedback's latest vote wins."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from swarmlens.store.client import QueryError, query_file
from swarmlens_testing.spans import Stretch, insert_spans, task_spans

DAY = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _q(client, cfg, sql, **params):
    params.setdefault("db", cfg.SWARMLENS_DATABASE)
    params.setdefault("otel", cfg.SWARMLENS_OTEL_DATABASE)
    return client.query(sql, parameters=params).result_rows


def _insert(client, cfg, spans):
    insert_spans(client, spans, database=cfg.SWARMLENS_OTEL_DATABASE)


def test_views_derive_tasks_agent_runs_chats_and_rollups(migrated, store_client):
    cfg, user = migrated, _user()
    rng = random.Random(7)
    handoff = task_spans(
        user_id=user, start=DAY, session_id="s-1", conversation_id="c-1", rng=rng,
        input="Please refund order 42", output="Refund issued.",
        stretches=[Stretch("Triage Agent", chats=[(100, 10)], tools=["lookup_order"]),
                   Stretch("Refunds Agent", model="gpt-4o", chats=[(200, 20), (300, 30)])])
    failed = task_spans(user_id=user, start=DAY + timedelta(hours=1), rng=rng,
                        stretches=[Stretch("Triage Agent", chats=[(50, 5)], error_type="APITimeoutError"),
                                   Stretch("Refunds Agent")])
    _insert(store_client, cfg, handoff + failed)
    t1, t2 = handoff[0]["TraceId"], failed[0]["TraceId"]

    tasks = _q(store_client, cfg,
               "SELECT task_id, session_id, conversation_id, status, error_type, input, output, agents, start_agent, "
               "final_agent, handoffs, turns, input_tokens, output_tokens, total_tokens, start_time, duration_ms "
               "FROM {db:Identifier}.tasks FINAL WHERE user_id = {u:String} ORDER BY start_time", u=user)
    assert [r[:15] for r in tasks] == [
        (t1, "s-1", "c-1", "ok", "", "Please refund order 42", "Refund issued.", ["Triage Agent", "Refunds Agent"],
         "Triage Agent", "Refunds Agent", 1, 3, 600, 60, 660),
        (t2, "", "", "error", "APITimeoutError", "Where is my order?", "", ["Triage Agent"],
         "Triage Agent", "Triage Agent", 0, 1, 50, 5, 55),
    ]
    assert tasks[0][15].replace(tzinfo=None) == DAY.replace(tzinfo=None) and tasks[0][16] == (handoff[0]["Duration"] // 1_000_000)

    runs = _q(store_client, cfg,
              "SELECT task_id, agent, model, input_tokens, output_tokens, turns, handoff_from, status, error_type "
              "FROM {db:Identifier}.agent_runs FINAL WHERE user_id = {u:String} ORDER BY start_time", u=user)
    assert runs == [
        (t1, "Triage Agent", "gpt-4o-mini", 100, 10, 1, "", "ok", ""),
        (t1, "Refunds Agent", "gpt-4o", 500, 50, 2, "Triage Agent", "ok", ""),
        (t2, "Triage Agent", "gpt-4o-mini", 50, 5, 1, "", "error", "APITimeoutError"),
    ]

    chats = _q(store_client, cfg,
               "SELECT model, response_model, agent, input_tokens, output_tokens, finish_reasons, status "
               "FROM {db:Identifier}.chat_calls FINAL WHERE user_id = {u:String} ORDER BY start_time", u=user)
    assert chats == [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "Triage Agent", 100, 10, ["tool_calls"], "ok"),
        ("gpt-4o", "gpt-4o-2024-07-18", "Refunds Agent", 200, 20, ["stop"], "ok"),
        ("gpt-4o", "gpt-4o-2024-07-18", "Refunds Agent", 300, 30, ["stop"], "ok"),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "Triage Agent", 50, 5, [], "error"),
    ]

    usage = _q(store_client, cfg,
               "SELECT day, agent, model, sum(agent_runs), sum(input_tokens), sum(output_tokens), sum(errors) "
               "FROM {db:Identifier}.usage_daily WHERE user_id = {u:String} "
               "GROUP BY day, agent, model ORDER BY agent", u=user)
    assert usage == [(date(2026, 3, 2), "Refunds Agent", "gpt-4o", 1, 500, 50, 0),
                     (date(2026, 3, 2), "Triage Agent", "gpt-4o-mini", 2, 150, 15, 1)]
    daily = _q(store_client, cfg,
               "SELECT day, sum(tasks), sum(input_tokens), sum(output_tokens), sum(errors) "
               "FROM {db:Identifier}.tasks_daily WHERE user_id = {u:String} GROUP BY day", u=user)
    assert daily == [(date(2026, 3, 2), 2, 650, 65, 1)]

    # The counting rule holds on this data: each level sums to the same task total.
    assert sum(r[3] for r in runs) == sum(r[3] for r in chats) == sum(r[12] for r in tasks)

    lookup = _q(store_client, cfg, "SELECT TraceId, Start FROM {otel:Identifier}.otel_traces_trace_id_ts "
                                   "WHERE TraceId = {t:String}", t=t1)
    assert lookup == [(t1, DAY.replace(tzinfo=None))]


def test_extraction_tolerates_missing_and_malformed_attributes(migrated, store_client):
    cfg, user = migrated, _user()
    root, agent, chat = task_spans(user_id=user, start=DAY, rng=random.Random(1))[:3]
    root["SpanAttributes"].update({"swarm.task.agents": "Solo Agent", "swarm.task.turns": "three",
                                   "swarm.task.usage.input_tokens": "-5", "swarm.task.handoffs": ""})
    del root["SpanAttributes"]["swarm.task.usage.output_tokens"]
    del root["SpanAttributes"]["swarm.task.input"]
    del agent["SpanAttributes"]["gen_ai.agent.name"]
    agent["SpanAttributes"]["gen_ai.usage.input_tokens"] = "1e9x"
    chat["SpanAttributes"]["gen_ai.response.finish_reasons"] = "stop"
    chat["SpanAttributes"]["swarm.usage.estimated"] = "true"
    _insert(store_client, cfg, [root, agent, chat])
    assert _q(store_client, cfg, "SELECT agents, turns, handoffs, input_tokens, output_tokens, input "
                                 "FROM {db:Identifier}.tasks WHERE user_id = {u:String}", u=user) == [
        (["Solo Agent"], 0, 0, 0, 0, "")]
    # the agent's name is also in the span name: "invoke_agent Triage Agent"
    assert _q(store_client, cfg, "SELECT agent, input_tokens FROM {db:Identifier}.agent_runs "
                                 "WHERE user_id = {u:String}", u=user) == [("Triage Agent", 0)]
    assert _q(store_client, cfg, "SELECT finish_reasons, usage_estimated FROM {db:Identifier}.chat_calls "
                                 "WHERE user_id = {u:String}", u=user) == [(["stop"], True)]


DERIVED_COUNTS = {
    "otel_traces": "SELECT count() FROM {otel:Identifier}.otel_traces WHERE SpanAttributes['enduser.id'] = {u:String}",
    "otel_traces_trace_id_ts": "SELECT count() FROM {otel:Identifier}.otel_traces_trace_id_ts WHERE TraceId IN "
                               "(SELECT TraceId FROM {otel:Identifier}.otel_traces "
                               "WHERE SpanAttributes['enduser.id'] = {u:String})",
    "tasks": "SELECT count(), sum(total_tokens) FROM {db:Identifier}.tasks WHERE user_id = {u:String}",
    "agent_runs": "SELECT count(), sum(input_tokens) FROM {db:Identifier}.agent_runs WHERE user_id = {u:String}",
    "chat_calls": "SELECT count(), sum(output_tokens) FROM {db:Identifier}.chat_calls WHERE user_id = {u:String}",
    "usage_daily": "SELECT sum(agent_runs), sum(input_tokens), sum(errors) FROM {db:Identifier}.usage_daily "
                   "WHERE user_id = {u:String}",
    "tasks_daily": "SELECT sum(tasks), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.tasks_daily "
                   "WHERE user_id = {u:String}",
}


def _counts(client, cfg, user):
    return {name: _q(client, cfg, sql, u=user)[0] for name, sql in DERIVED_COUNTS.items()}


def test_identical_batch_twice_counts_once_but_equal_aggregates_count(migrated, store_client):
    cfg, user = migrated, _user()

    def batch(seed):
        rng = random.Random(seed)
        return [span for i in range(3) for span in task_spans(
            user_id=user, start=DAY + timedelta(minutes=i), rng=rng,
            stretches=[Stretch("Triage Agent", tools=["lookup"]), Stretch("Sales Agent", chats=[(10, 1), (20, 2)])])]

    first = batch(1)
    _insert(store_client, cfg, first)
    once = _counts(store_client, cfg, user)
    assert once["tasks"] == (3, 3 * (120 + 30 + 30 + 3)) and once["usage_daily"] == (6, 3 * 150, 0)

    _insert(store_client, cfg, batch(1))  # the collector's retry: the very same rows again
    assert _counts(store_client, cfg, user) == once

    # Other tasks whose rollup rows are equal to the first batch's are new data, not a retry.
    second = batch(2)
    assert [s["TraceId"] for s in second] != [s["TraceId"] for s in first]
    _insert(store_client, cfg, second)
    twice = _counts(store_client, cfg, user)
    assert twice["tasks"] == (6, 2 * once["tasks"][1])
    assert twice["usage_daily"] == tuple(2 * v for v in once["usage_daily"])
    assert twice["tasks_daily"] == tuple(2 * v for v in once["tasks_daily"])
    assert twice["otel_traces"] == (2 * once["otel_traces"][0],)


def test_task_resent_in_another_batch_collapses_with_final(migrated, store_client):
    cfg, user = migrated, _user()
    spans = task_spans(user_id=user, start=DAY, rng=random.Random(3))
    _insert(store_client, cfg, spans)
    _insert(store_client, cfg, spans[:1])  # a different block holding the same root span
    assert _q(store_client, cfg, "SELECT count() FROM {db:Identifier}.tasks FINAL WHERE user_id = {u:String}",
              u=user) == [(1,)]


def test_feedback_latest_vote_wins(migrated, store_client):
    cfg, user = migrated, _user()
    task = uuid.uuid4().hex
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    for vote, comment, at in [(1, "great", t0), (-1, "wrong answer", t0 + timedelta(minutes=5)),
                              (1, "late-arriving older vote", t0 + timedelta(minutes=1))]:
        store_client.insert("feedback", [[task, user, vote, comment, at]],
                            column_names=["task_id", "user_id", "vote", "comment", "created_at"],
                            database=cfg.SWARMLENS_DATABASE)
    assert _q(store_client, cfg, "SELECT vote, comment FROM {db:Identifier}.feedback FINAL "
                                 "WHERE task_id = {t:String} AND user_id = {u:String}", t=task, u=user) == [
        (-1, "wrong answer")]
    assert _q(store_client, cfg, "SELECT argMax(vote, created_at) FROM {db:Identifier}.feedback "
                                 "WHERE task_id = {t:String}", t=task) == [(-1,)]


def test_keyword_search_uses_the_text_index(migrated, store_client):
    cfg, user = migrated, _user()
    rng = random.Random(5)
    _insert(store_client, cfg, task_spans(user_id=user, start=DAY, rng=rng, input="Cancel my Subscription, please")
            + task_spans(user_id=user, start=DAY, rng=rng, input="Where is my parcel?"))
    sql = "FROM {db:Identifier}.tasks WHERE user_id = {u:String} AND hasAnyTokens(input, {q:String})"
    assert _q(store_client, cfg, "SELECT input " + sql, u=user, q="SUBSCRIPTION") == [
        ("Cancel my Subscription, please",)]
    plan = "\n".join(r[0] for r in _q(store_client, cfg, "EXPLAIN indexes = 1 SELECT input " + sql, u=user, q="x"))
    assert "idx_input" in plan


def test_query_file_binds_typed_parameters_and_database_names(migrated, store_client, tmp_path):
    cfg, user = migrated, _user()
    _insert(store_client, cfg, task_spans(user_id=user, start=DAY, rng=random.Random(9)))
    path = tmp_path / "count_tasks.sql"
    path.write_text("SELECT count() FROM {db:Identifier}.tasks WHERE user_id = {user:String} "
                    "AND start_time >= {since:DateTime64(3)}")
    result = query_file(store_client, Path(path), {"user": user, "since": DAY - timedelta(days=1)}, config=cfg)
    assert result.result_rows == [(1,)]
    # a value is bound by the server, never spliced into the SQL
    assert query_file(store_client, Path(path), {"user": "x' OR '1'='1", "since": DAY}, config=cfg
                      ).result_rows == [(0,)]
    path.write_text("SELECT count() FROM {db:Identifier}.no_such_table")
    with pytest.raises(QueryError) as err:
        query_file(store_client, Path(path), config=cfg)
    assert err.value.code == 60
