"""Migration 0015: a model call that is the root of its trace, made for a user, is a task of that
user (a plain OpenAI SDK app); a copy of a call another task already counts is not."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from swarmlens_testing.spans import Stretch, insert_spans, task_spans

DAY = datetime(2026, 6, 2, 14, 0, tzinfo=timezone.utc)


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _root_chat(user: str, rng: random.Random, start: datetime, tokens=(42, 7), scope="opentelemetry.instrumentation.openai_v2"):
    (chat,) = [s for s in task_spans(user_id=user, start=start, rng=rng,
                                     stretches=[Stretch("x", chats=[tokens])]) if s["SpanName"].startswith("chat ")]
    attrs = {k: v for k, v in chat["SpanAttributes"].items() if k != "gen_ai.agent.name"}
    attrs["session.id"] = "s-plain"
    return dict(chat, ParentSpanId="", ScopeName=scope, SpanAttributes=attrs)


def _tasks(client, cfg, user):
    return client.query(
        "SELECT task_id, session_id, agents, turns, input_tokens, output_tokens FROM {db:Identifier}.tasks FINAL "
        "WHERE user_id = {u:String} ORDER BY start_time", parameters={"db": cfg.SWARMLENS_DATABASE, "u": user}).result_rows


def test_a_root_model_call_with_a_user_is_a_task(migrated, store_client):
    cfg, user, rng = migrated, _user(), random.Random(1)
    calls = [_root_chat(user, rng, DAY + timedelta(minutes=i)) for i in range(3)]
    insert_spans(store_client, calls, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _tasks(store_client, cfg, user)
    assert [(r[0], r[1:]) for r in rows] == [(c["TraceId"], ("s-plain", [], 1, 42, 7)) for c in calls]
    daily = store_client.query(
        "SELECT sum(tasks), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.tasks_daily "
        "WHERE user_id = {u:String}", parameters={"db": cfg.SWARMLENS_DATABASE, "u": user}).result_rows
    assert daily == [(3, 126, 21)]


def test_calls_without_a_user_or_inside_another_root_are_not_tasks(migrated, store_client):
    cfg, rng = migrated, random.Random(2)
    anonymous = _root_chat("", rng, DAY)
    user = _user()
    inside = dict(_root_chat(user, rng, DAY), ParentSpanId="00000000000000ab")  # under an HTTP span, say
    insert_spans(store_client, [anonymous, inside], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert _tasks(store_client, cfg, user) == []
    assert store_client.query("SELECT count() FROM {db:Identifier}.tasks FINAL WHERE task_id = {t:String}",
                              parameters={"db": cfg.SWARMLENS_DATABASE, "t": anonymous["TraceId"]}).result_rows == [(0,)]


def test_an_agents_sdk_call_written_again_as_a_root_is_not_a_second_task(migrated, store_client):
    cfg, user, rng = migrated, _user(), random.Random(3)
    spans = task_spans(user_id=user, start=DAY + timedelta(hours=1), rng=rng,
                       stretches=[Stretch("Triage", chats=[(61, 8)])])
    (chat,) = [s for s in spans if s["SpanName"].startswith("chat ")]
    copy = dict(_root_chat(user, rng, chat["Timestamp"], tokens=(61, 8)),
                SpanAttributes={**chat["SpanAttributes"], "gen_ai.agent.name": ""})
    insert_spans(store_client, spans + [copy], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert [r[3:] for r in _tasks(store_client, cfg, user)] == [(1, 61, 8)]
