"""Unit tests of the pure helpers."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context

from opentelemetry.instrumentation.openai_swarm import current_swarm_user, swarm_user
from opentelemetry.instrumentation.openai_swarm import utils as u


def test_clean_str_handles_any_value():
    class Broken:
        def __str__(self):
            raise RuntimeError("no")

    assert u.clean_str(b"\xff\xfeok", 100) == "\ufffd\ufffdok"
    assert u.clean_str("a\udcffb", 100) == "a?b"
    assert u.clean_str(12.5, 100) == "12.5"
    assert u.clean_str(Broken(), 100) == "<unprintable Broken>"
    assert u.clean_str("é" * 10, 100) == "é" * 10


def test_truncation_keeps_the_limit_and_marks_the_cut():
    assert u.truncate("abc", 3) == "abc"
    cut = u.clean_str("x" * 1000, 50)
    assert len(cut) == 50 and cut.endswith("…")
    assert u.clean_value(["a" * 100, 3], 20) == ["a" * 19 + "…", "3"]
    assert u.clean_value(True, 5) is True and u.clean_value(7, 5) == 7


def test_load_config_precedence_and_bad_values(caplog):
    env = {"OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH": "200",
           "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
           "OTEL_INSTRUMENTATION_SWARM_CAPTURE_CONTENT": "off",
           "OTEL_INSTRUMENTATION_SWARM_USER_KEY": " customer "}
    cfg = u.load_config({"max_attribute_length": 99}, env)
    assert (cfg.max_attribute_length, cfg.capture_messages, cfg.capture_content, cfg.user_key) == \
        (99, True, False, "customer")
    with caplog.at_level(logging.WARNING):
        cfg = u.load_config(None, {"OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH": "lots",
                                   "OTEL_INSTRUMENTATION_SWARM_STREAM_USAGE": "maybe"})
    assert cfg.max_attribute_length == 4096 and cfg.stream_usage is True
    assert "OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH" in caplog.text
    assert u.load_config(None, {}) == u.Config()


def test_resolve_user_precedence():
    cfg = u.Config()
    cv = {"user_id": "cv", "session_id": "cv-s"}
    assert u.resolve_user(None, cv, cfg) == u.UserInfo("cv", "cv-s")
    ctx = baggage.set_baggage("enduser.id", "bag")
    assert u.resolve_user(ctx, cv, cfg) == u.UserInfo("bag", "cv-s")
    ctx = otel_context.set_value(u.USER_CONTEXT_KEY, u.UserInfo(None, "exp-s"), ctx)
    assert u.resolve_user(ctx, cv, cfg) == u.UserInfo("bag", "exp-s")
    assert u.resolve_user(None, {"user_id": ""}, cfg) == u.UserInfo()
    assert u.resolve_user(None, cv, u.Config(user_key="", session_key="")) == u.UserInfo()


def test_swarm_user_nests_and_decorates_async():
    assert current_swarm_user() is None
    with swarm_user("u1", session_id="s1"):
        with swarm_user(session_id="s2") as info:
            assert info == u.UserInfo("u1", "s2")
        assert current_swarm_user() == u.UserInfo("u1", "s1")
    assert current_swarm_user() is None

    @swarm_user("async-user")
    async def handler():
        return current_swarm_user()

    assert asyncio.run(handler()).user_id == "async-user"


def test_usage_from_response_and_estimate():
    class Obj:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    usage = Obj(prompt_tokens=10, completion_tokens=3, prompt_tokens_details=Obj(cached_tokens=4),
                completion_tokens_details=None)
    assert u.usage_from_response(usage) == u.Usage(10, 3, 4, None)
    assert u.usage_from_response({"prompt_tokens": 1, "completion_tokens": 2,
                                  "completion_tokens_details": {"reasoning_tokens": 1}}) == u.Usage(1, 2, None, 1)
    assert u.usage_from_response(None) is None
    assert u.usage_from_response({"total_tokens": 5}) is None
    assert u.estimate_tokens("") == 0 and u.estimate_tokens("abcde") == 2
    msgs = [{"role": "user", "content": [{"type": "text", "text": "ab"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]
    assert u.request_text(msgs) == "abf{}"


def test_task_input_and_output_pick_the_right_messages():
    msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
            {"role": "user", "content": "latest"}]
    assert u.last_user_message(msgs) == "latest"
    assert u.final_assistant_message([{"role": "assistant", "content": "done"}, {"role": "tool", "content": "x"}]) \
        == "done"
    assert u.final_assistant_message([{"role": "assistant", "content": None, "tool_calls": [{}]}]) is None


def test_messages_json_shape():
    out = u.messages_json([{"role": "tool", "tool_call_id": "c1", "content": "r"}], 10)
    assert out == '[{"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "r"}]}]'


@pytest.mark.parametrize("value", ["1", "true", "on", "yes"])
def test_bool_parsing(value):
    assert u._parse_bool(value) is True


def test_usage_from_a_mapping_reads_its_items_even_with_attributes_of_the_same_name():
    from collections.abc import Mapping

    class AttrMapping(Mapping):  # items and attributes disagree: a mapping is read by its items
        prompt_tokens = 99
        completion_tokens = 99

        def __init__(self, **items):
            self._items = items

        def __getitem__(self, key):
            return self._items[key]

        def __iter__(self):
            return iter(self._items)

        def __len__(self):
            return len(self._items)

    for _ in range(2):  # the second time after the per-class answer was kept
        assert u.usage_from_response(AttrMapping(prompt_tokens=5, completion_tokens=6)) == u.Usage(5, 6)
    assert AttrMapping not in u._ATTRIBUTE_USAGE_TYPES
