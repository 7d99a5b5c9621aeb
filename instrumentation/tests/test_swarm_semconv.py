"""The GenAI semantic-conventions points: conversation id on agent and chat spans, streaming
attributes, server address, cache-read and reasoning sums, tool descriptions, qualified error
types, a span for a tool call whose arguments are not JSON, attribute names from the package."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import StatusCode
from swarm import Agent

import support_scenario as sc
from opentelemetry.instrumentation.openai_swarm import swarm_user
from opentelemetry.instrumentation.openai_swarm import utils as u
from support_llm import ScriptedLLM

REFUND = [{"role": "user", "content": "I want a refund for my last invoice"}]


def test_conversation_id_is_on_every_span_of_the_task(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    with swarm_user("u-1", conversation_id="conv-1"):
        swarm_client.run(triage, REFUND)
    spans = exporter.get_finished_spans()
    assert {s.name.split(" ")[0] for s in spans} == {"invoke_workflow", "invoke_agent", "chat", "execute_tool"}
    assert all(s.attributes["gen_ai.conversation.id"] == "conv-1" for s in spans)


@pytest.mark.parametrize("stream", [False, True])
def test_server_address_stream_flag_and_time_to_first_chunk(instrumented, swarm_client, exporter, llm, stream):
    triage, *_ = sc.build_agents()
    if stream:
        list(swarm_client.run(triage, REFUND, stream=True))
    else:
        swarm_client.run(triage, REFUND)
    url = urlsplit(llm.url)
    chats = sc.named(exporter.get_finished_spans(), "chat ")
    assert len(chats) == len(sc.FLOWS["refund"])
    for chat in chats:
        a = chat.attributes
        assert (a["server.address"], a["server.port"]) == (url.hostname, url.port)
        if stream:
            assert a["gen_ai.request.stream"] is True
            ttfc = a["gen_ai.response.time_to_first_chunk"]
            assert 0 < ttfc < (chat.end_time - chat.start_time) / 1e9
        else:
            assert "gen_ai.request.stream" not in a and "gen_ai.response.time_to_first_chunk" not in a


def test_cache_read_and_reasoning_tokens_are_summed_onto_agent_and_root(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    swarm_client.run(triage, REFUND)
    spans = exporter.get_finished_spans()
    billing = sc.named(spans, "invoke_agent Billing")[0].attributes
    triage_span = sc.named(spans, "invoke_agent Triage")[0].attributes
    root = sc.root_of(spans).attributes
    # BILLING_REFUND reports 40 cached input tokens on its first reply and 6 reasoning tokens on its last
    assert (billing["gen_ai.usage.cache_read.input_tokens"], billing["gen_ai.usage.reasoning.output_tokens"]) == (40, 6)
    assert "gen_ai.usage.cache_read.input_tokens" not in triage_span  # the API reported no detail there
    assert (root["swarm.task.usage.cache_read.input_tokens"], root["swarm.task.usage.reasoning.output_tokens"]) \
        == (40, 6)


def test_tool_description_is_the_docstring(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    swarm_client.run(triage, REFUND)
    spans = exporter.get_finished_spans()
    handoff = sc.named(spans, "execute_tool transfer_to_billing")[0]
    assert handoff.attributes["gen_ai.tool.description"] == "Hand the customer to billing."
    assert "gen_ai.tool.description" not in sc.named(spans, "execute_tool lookup_invoice")[0].attributes


def test_error_type_is_fully_qualified_like_the_official_instrumentation(instrumented, swarm_client, exporter):
    import openai

    triage, *_ = sc.build_agents()
    with pytest.raises(openai.RateLimitError):
        swarm_client.run(triage, [{"role": "user", "content": "please ratelimit"}])
    for span in exporter.get_finished_spans():
        assert span.attributes["error.type"] == "openai.RateLimitError"
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == span.attributes["error.type"]


MALFORMED = {
    "model": sc.MODEL,
    "agents": {"a": {"match": "[agent:json]", "name": "Json", "replies": [
        {"when": "go", "tool_calls": [{"name": "ping", "arguments": "{\"x\": 1"},
                                      {"name": "ping", "arguments": "{}"}], "usage": sc.usage(10, 3)}]}},
}


def test_a_tool_call_with_malformed_json_arguments_gets_its_span(instrument, exporter):
    instrument(capture_messages=True)
    ran = []

    def ping(**kwargs):
        """Answers pong."""
        ran.append(kwargs)
        return "pong"

    agent = Agent(name="Json", model=sc.MODEL, instructions="[agent:json] test", functions=[ping])
    with ScriptedLLM(MALFORMED) as server:
        with pytest.raises(json.JSONDecodeError):
            sc.make_swarm(server).run(agent, [{"role": "user", "content": "go"}])
    assert ran == []  # Swarm failed before calling anything
    spans = exporter.get_finished_spans()
    (tool,) = sc.named(spans, "execute_tool ")
    a = tool.attributes
    assert a["gen_ai.tool.name"] == "ping" and a["gen_ai.tool.call.id"]
    assert a["gen_ai.tool.call.arguments"] == "{\"x\": 1"
    assert a["gen_ai.tool.description"] == "Answers pong."
    assert tool.status.status_code == StatusCode.ERROR and a["error.type"] == "json.decoder.JSONDecodeError"
    assert sc.root_of(spans).status.status_code == StatusCode.ERROR


def test_attribute_names_come_from_the_semantic_conventions_package():
    names = {"GEN_AI_OPERATION_NAME": "gen_ai.operation.name", "GEN_AI_CONVERSATION_ID": "gen_ai.conversation.id",
             "GEN_AI_REQUEST_STREAM": "gen_ai.request.stream",
             "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK": "gen_ai.response.time_to_first_chunk",
             "GEN_AI_TOOL_DESCRIPTION": "gen_ai.tool.description", "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens"}
    for name, value in names.items():
        assert getattr(u, name) == value
        if hasattr(genai, name):  # an older semantic-conventions release lacks some: the name is the fallback
            assert getattr(u, name) is getattr(genai, name)


def test_a_name_the_semantic_conventions_package_lacks_falls_back():
    assert u._semconv("_incubating.attributes.gen_ai_attributes", NOT_THERE="gen_ai.x.y") == ["gen_ai.x.y"]
    assert u._semconv("no_such_module", ANYTHING="a.b") == ["a.b"]


@pytest.mark.parametrize("mode,on_span", [("event_only", False), ("span_and_event", True)])
@pytest.mark.parametrize("stream", [False, True])
def test_message_content_in_events(monkeypatch, instrument, swarm_client, exporter, mode, on_span, stream):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    instrument()
    triage, *_ = sc.build_agents()
    if stream:
        list(swarm_client.run(triage, REFUND, stream=True))
    else:
        swarm_client.run(triage, REFUND)
    chats = sc.named(exporter.get_finished_spans(), "chat ")
    assert len(chats) == len(sc.FLOWS["refund"])
    for chat in chats:
        (event,) = [e for e in chat.events if e.name == "gen_ai.client.inference.operation.details"]
        inputs = json.loads(event.attributes["gen_ai.input.messages"])
        assert inputs[0]["role"] == "system" and any(m["role"] == "user" for m in inputs)
        assert json.loads(event.attributes["gen_ai.output.messages"])[0]["role"] == "assistant"
        assert ("gen_ai.input.messages" in chat.attributes) is on_span
    last = json.loads(chats[-1].events[-1].attributes["gen_ai.output.messages"])
    assert last[0]["parts"][0]["content"] == sc.BILLING_REFUND[2]["content"]
