"""Migration 0014: a model response written by two instrumentations is one call. chat_calls keeps
every span and marks the copies (duplicate_of), whatever trace they sit in and whichever batch
brings them; the rollups count the originals only, and cost comes from the chat level."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from swarmlens_testing.spans import Stretch, insert_spans, task_spans

DAY = datetime(2026, 5, 11, 9, 0, tzinfo=timezone.utc)
OFFICIAL = "opentelemetry.instrumentation.openai_v2"


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _official_copy(chat: dict, rng: random.Random, *, with_id: bool = True, shift_ms: int = 3) -> dict:
    """The official openai-v2 span of the same response: the root of a trace of its own (the Agents SDK
    does not carry the context), no agent, the user copied by the identity processor."""
    attrs = {k: v for k, v in chat["SpanAttributes"].items() if k != "gen_ai.agent.name"}
    if not with_id:
        attrs.pop("gen_ai.response.id", None)
    return dict(chat, TraceId=f"{rng.getrandbits(128):032x}", SpanId=f"{rng.getrandbits(64):016x}", ParentSpanId="",
                ScopeName=OFFICIAL, Timestamp=chat["Timestamp"] + timedelta(milliseconds=shift_ms),
                SpanAttributes=attrs)


def _calls(client, cfg, user):
    return client.query(
        "SELECT span_id, agent, model, input_tokens, output_tokens, duplicate_of FROM {db:Identifier}.chat_calls FINAL "
        "WHERE user_id = {u:String} ORDER BY start_time, span_id",
        parameters={"db": cfg.SWARMLENS_DATABASE, "u": user}).result_rows


def _rollups(client, cfg, user):
    """(calls, input, output) of the user in chat_usage_daily, model_daily, and per agent."""
    p = {"db": cfg.SWARMLENS_DATABASE, "u": user}
    chat = client.query("SELECT sum(calls), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.chat_usage_daily "
                        "WHERE user_id = {u:String}", parameters=p).result_rows[0]
    model = client.query("SELECT sum(calls), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.model_daily "
                         "WHERE user_id = {u:String}", parameters=p).result_rows[0]
    agents = client.query("SELECT agent, sum(input_tokens) FROM {db:Identifier}.chat_usage_daily "
                          "WHERE user_id = {u:String} GROUP BY agent ORDER BY agent", parameters=p).result_rows
    return tuple(chat), tuple(model), agents


def _spans(user, start, seed, chats=((61, 8), (95, 11))):
    return task_spans(user_id=user, start=start, rng=random.Random(seed),
                      stretches=[Stretch("Triage", chats=list(chats))])


def test_copies_in_other_traces_with_the_same_response_id_count_once(migrated, store_client):
    cfg, user, rng = migrated, _user(), random.Random(10)
    spans = _spans(user, DAY, 1)
    chats = [s for s in spans if s["SpanName"].startswith("chat ")]
    copies = [_official_copy(c, rng) for c in chats]
    insert_spans(store_client, copies + spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    assert len(rows) == 4
    originals = [r for r in rows if r[5] == ""]
    # the copies inside the task (with an agent) count; the official ones point at them
    assert sorted(r[0] for r in originals) == sorted(c["SpanId"] for c in chats)
    assert sorted(r[5] for r in rows if r[5]) == sorted(c["SpanId"] for c in chats)
    assert _rollups(store_client, cfg, user) == ((2, 156, 19), (2, 156, 19), [("Triage", 156)])


def test_the_order_of_batches_does_not_double_count(migrated, store_client):
    """The official copy first, in an earlier batch: it was counted, so it stays the original and
    the later copy is the duplicate; either way one call."""
    cfg, user, rng = migrated, _user(), random.Random(11)
    spans = _spans(user, DAY + timedelta(hours=1), 2, chats=((40, 4),))
    (chat,) = [s for s in spans if s["SpanName"].startswith("chat ")]
    copy = _official_copy(chat, rng)
    insert_spans(store_client, [copy], database=cfg.SWARMLENS_OTEL_DATABASE)
    insert_spans(store_client, spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    assert {r[0]: r[5] for r in rows} == {copy["SpanId"]: "", chat["SpanId"]: copy["SpanId"]}
    assert _rollups(store_client, cfg, user)[:2] == ((1, 40, 4), (1, 40, 4))


def test_without_an_id_copies_match_by_model_tokens_and_time(migrated, store_client):
    cfg, user, rng = migrated, _user(), random.Random(12)
    spans = _spans(user, DAY + timedelta(hours=2), 3)
    chats = [s for s in spans if s["SpanName"].startswith("chat ")]
    for c in chats:  # the Agents SDK's chat-completions spans carry no response id
        c["SpanAttributes"].pop("gen_ai.response.id")
    copies = [_official_copy(c, rng, with_id=True, shift_ms=2) for c in chats]
    # calls of the same tokens in another trace that start after the call ended (1 ms, 10 s) are other calls
    after = []
    for shift, suffix in ((6, "next"), (10_000, "later")):
        a = _official_copy(chats[0], rng, shift_ms=shift)
        a["SpanAttributes"] = dict(a["SpanAttributes"], **{"gen_ai.response.id": f"chatcmpl-{suffix}"})
        after.append(a)
    insert_spans(store_client, spans + copies + after, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    assert len(rows) == 6 and sum(1 for r in rows if r[5] == "") == 4
    assert _rollups(store_client, cfg, user)[:2] == ((4, 278, 35), (4, 278, 35))


def test_distinct_calls_are_never_merged(migrated, store_client):
    """Same tokens and model: two calls of one instrumentation (same scope) in two tasks, and two
    calls with different response ids, stay two calls each."""
    cfg, user = migrated, _user()
    a = _spans(user, DAY + timedelta(hours=3), 4, chats=((30, 3),))
    b = _spans(user, DAY + timedelta(hours=3), 5, chats=((30, 3),))
    for spans in (a, b):
        for s in spans:
            s["SpanAttributes"].pop("gen_ai.response.id", None)
    insert_spans(store_client, a + b, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    assert [r[5] for r in rows] == ["", ""]
    assert _rollups(store_client, cfg, user)[:2] == ((2, 60, 6), (2, 60, 6))


def test_a_retried_batch_is_not_a_copy_of_itself(migrated, store_client):
    cfg, user = migrated, _user()
    spans = _spans(user, DAY + timedelta(hours=4), 6, chats=((20, 2),))
    insert_spans(store_client, spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    chat = next(s for s in spans if s["SpanName"].startswith("chat "))
    insert_spans(store_client, [chat], database=cfg.SWARMLENS_OTEL_DATABASE)
    assert [r[5] for r in _calls(store_client, cfg, user)] == [""]


def test_every_row_of_a_large_block_is_derived(migrated, store_client):
    """The view joins the block with itself and with stored rows: no row may be lost on the way."""
    cfg, user = migrated, _user()
    spans = []
    for i in range(300):
        spans += _spans(user, DAY + timedelta(hours=5, seconds=i), 100 + i, chats=((10 + i % 7, 1),))
    insert_spans(store_client, spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    assert len(rows) == 300 and all(r[5] == "" for r in rows)
    expected_in = sum(10 + i % 7 for i in range(300))
    assert _rollups(store_client, cfg, user)[:2] == ((300, expected_in, 300), (300, expected_in, 300))


LOGFIRE = "logfire.openai"


def _logfire_stream(chat: dict, rng: random.Random) -> list[dict]:
    """logfire's two spans of a streamed completion in place of ``chat``: the request span, ended when the
    stream was returned (no usage, no response id), and the log written when the stream ended, with
    the usage and the id; both under the agent span, the identity processor's user and agent on both."""
    attrs = chat["SpanAttributes"]
    kept = {k: v for k, v in attrs.items() if not k.startswith(("gen_ai.usage.", "gen_ai.response."))}
    request = dict(chat, SpanId=f"{rng.getrandbits(64):016x}", ScopeName=LOGFIRE, SpanKind="Client",
                   SpanName="Chat Completion with {request_data[model]!r}", Duration=2_000_000,
                   SpanAttributes=dict(kept, **{"logfire.span_type": "span"}))
    log = dict(chat, SpanId=f"{rng.getrandbits(64):016x}", ScopeName=LOGFIRE, SpanKind="Internal",
               SpanName="streaming response from {request_data[model]!r} took {duration:.2f}s", Duration=0,
               Timestamp=chat["Timestamp"] + timedelta(milliseconds=40),
               SpanAttributes=dict(attrs, **{"logfire.span_type": "log"}))
    return [request, log]


def test_a_completion_logfire_streams_is_one_call_its_log(migrated, store_client):
    """Its request span (no usage, no id) is not a call of its own: the log with the usage is the call,
    for the agent whose span both are under. A logfire request that failed (no log) stays a call."""
    cfg, user, rng = migrated, _user(), random.Random(14)
    spans = _spans(user, DAY + timedelta(hours=4), 5)
    chats = [s for s in spans if s["SpanName"].startswith("chat ")]
    streamed = [x for c in chats for x in _logfire_stream(c, rng)]
    failed = dict(streamed[0], SpanId=f"{rng.getrandbits(64):016x}", StatusCode="Error",
                  Timestamp=chats[-1]["Timestamp"] + timedelta(seconds=30),
                  SpanAttributes=dict(streamed[0]["SpanAttributes"], **{"error.type": "RateLimitError"}))
    insert_spans(store_client, [s for s in spans if s not in chats] + streamed + [failed],
                 database=cfg.SWARMLENS_OTEL_DATABASE)
    rows = _calls(store_client, cfg, user)
    logs = {x["SpanId"] for x in streamed if x["SpanAttributes"]["logfire.span_type"] == "log"}
    assert sorted(r[0] for r in rows) == sorted(logs | {failed["SpanId"]})
    assert all(r[5] == "" for r in rows) and {r[1] for r in rows} == {"Triage"}
    assert _rollups(store_client, cfg, user) == ((3, 156, 19), (3, 156, 19), [("Triage", 156)])
