"""Migration 0012: tasks from any GenAI-semconv instrumentation. A trace whose root is a workflow or
agent invocation without swarm.* totals becomes a task with totals counted from its spans; a
retried batch and a second instrumentation's nested chat spans are not counted twice; Swarm
tasks keep their figures."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from swarmlens_testing.spans import Stretch, foreign_spans, insert_spans, task_spans

DAY = datetime(2026, 4, 6, 10, 0, tzinfo=timezone.utc)
TASK_COLUMNS = ("user_id", "session_id", "agents", "start_agent", "final_agent", "handoffs", "turns",
                "input_tokens", "output_tokens", "total_tokens", "status")


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _tasks(client, cfg, user):
    return client.query(
        f"SELECT task_id, {', '.join(TASK_COLUMNS)} FROM {{db:Identifier}}.tasks FINAL "
        "WHERE user_id = {u:String} ORDER BY start_time",
        parameters={"db": cfg.SWARMLENS_DATABASE, "u": user}).result_rows


def _stretches():
    return [Stretch("Triage", chats=[(61, 8)]), Stretch("Billing", model="gpt-4o", chats=[(95, 11), (140, 17)],
                                                         tools=["lookup_invoice"])]


def test_a_foreign_trace_is_a_task_with_totals_from_its_spans(migrated, store_client):
    cfg, user = migrated, _user()
    spans = foreign_spans(task_spans(user_id=user, session_id="s-9", start=DAY, rng=random.Random(1),
                                     stretches=_stretches()))
    root, children = spans[0], spans[1:]
    # children first, in an earlier batch, as a batching exporter sends them (they end first) ...
    insert_spans(store_client, children, database=cfg.SWARMLENS_OTEL_DATABASE)
    # ... and the root with one child again in the next one (a retried span must not count twice)
    insert_spans(store_client, [root, children[1]], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert [r[1:] for r in _tasks(store_client, cfg, user)] == [
        (user, "s-9", ["Triage", "Billing"], "Triage", "Billing", 1, 3, 296, 36, 332, "ok")]
    # per-model figures of the same trace agree with the task (the counting rule's other level)
    by_model = store_client.query(
        "SELECT model, sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.chat_calls FINAL "
        "WHERE task_id = {t:String} GROUP BY model ORDER BY model",
        parameters={"db": cfg.SWARMLENS_DATABASE, "t": root["TraceId"]}).result_rows
    assert by_model == [("gpt-4o", 235, 28), ("gpt-4o-mini", 61, 8)]


def test_a_root_with_its_spans_in_one_batch_and_an_agent_root(migrated, store_client):
    cfg, user = migrated, _user()
    spans = foreign_spans(task_spans(user_id=user, start=DAY + timedelta(hours=1), rng=random.Random(2),
                                     stretches=[Stretch("Solo", chats=[(10, 2), (20, 3)])]))
    # an agent invocation as the root: drop the workflow span and lift the agent span up
    agent_root = dict(spans[1], ParentSpanId="")
    insert_spans(store_client, [agent_root] + spans[2:], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert [r[1:] for r in _tasks(store_client, cfg, user)] == [
        (user, "", ["Solo"], "Solo", "Solo", 0, 2, 30, 5, 35, "ok")]


def test_nested_chat_spans_of_a_second_instrumentation_are_not_counted_again(migrated, store_client):
    cfg, user = migrated, _user()
    spans = foreign_spans(task_spans(user_id=user, start=DAY + timedelta(hours=2), rng=random.Random(3),
                                     stretches=[Stretch("Triage", chats=[(50, 5)])]))
    chat = next(s for s in spans if s["SpanName"].startswith("chat "))
    inner = dict(chat, SpanId="ffff" + chat["SpanId"][4:], ParentSpanId=chat["SpanId"],
                 SpanName="Chat Completion with 'gpt-4o-mini'", ScopeName="logfire.openai")
    insert_spans(store_client, spans + [inner], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert [r[7:10] for r in _tasks(store_client, cfg, user)] == [(1, 50, 5)]


def test_half_conforming_spans_never_break_the_views(migrated, store_client):
    cfg, user = migrated, _user()
    spans = foreign_spans(task_spans(user_id=user, start=DAY + timedelta(hours=3), rng=random.Random(4)))
    for s in spans[1:]:
        s["SpanAttributes"]["gen_ai.usage.input_tokens"] = "lots"  # not a number
        s["SpanAttributes"].pop("gen_ai.agent.name", None)
    stray = dict(spans[0], TraceId=uuid.uuid4().hex, SpanId="0123456789abcdef",
                 SpanName="GET /health", SpanAttributes={})  # a root of no GenAI operation: not a task
    insert_spans(store_client, spans + [stray], database=cfg.SWARMLENS_OTEL_DATABASE)
    (row,) = _tasks(store_client, cfg, user)
    assert row[3:8] == (["Triage Agent"], "Triage Agent", "Triage Agent", 0, 1)  # agent from the span name
    assert row[8] == 0
    assert store_client.query("SELECT count() FROM {db:Identifier}.tasks WHERE task_id = {t:String}",
                              parameters={"db": cfg.SWARMLENS_DATABASE, "t": stray["TraceId"]}).result_rows == [(0,)]


def test_swarm_tasks_keep_their_figures_from_the_root(migrated, store_client):
    cfg, user = migrated, _user()
    spans = task_spans(user_id=user, start=DAY + timedelta(hours=4), rng=random.Random(5), stretches=_stretches())
    insert_spans(store_client, spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    insert_spans(store_client, spans[:1], database=cfg.SWARMLENS_OTEL_DATABASE)  # the root re-sent
    assert [r[1:] for r in _tasks(store_client, cfg, user)] == [
        (user, "", ["Triage", "Billing"], "Triage", "Billing", 1, 3, 296, 36, 332, "ok")]
