"""Streamed tasks (run_and_stream / run(stream=True))."""

from __future__ import annotations

import gc
import logging

import openai
import pytest
from opentelemetry.trace import StatusCode

import support_scenario as sc

REFUND = [{"role": "user", "content": "I want a refund for my last invoice"}]
OUTAGE = [{"role": "user", "content": "Is there an outage? Your API fails."}]


def _stream(client, messages, **kwargs):
    triage, *_ = sc.build_agents()
    return list(client.run(triage, messages, stream=True, **kwargs))


def test_stream_yields_exactly_what_it_yields_uninstrumented(instrument, swarm_client, exporter, llm):
    triage, *_ = sc.build_agents()
    plain = list(swarm_client.run_and_stream(triage, REFUND))
    instrument()
    llm.reset()
    traced = list(swarm_client.run_and_stream(triage, REFUND))
    assert traced == plain
    assert all("choices" not in item for item in traced)
    assert llm.requests and all(body["stream_options"] == {"include_usage": True} for body in llm.requests)
    assert exporter.get_finished_spans()


@pytest.mark.parametrize("flow,messages", [("refund", REFUND), ("outage", OUTAGE)])
def test_stream_usage_is_exact(instrumented, swarm_client, exporter, flow, messages):
    items = _stream(swarm_client, messages, context_variables={"user_id": "streamer"})
    assert items[-1]["response"].messages[-1]["content"] == sc.FLOWS[flow][-1][1]["content"]
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    assert (root.attributes["swarm.task.usage.input_tokens"],
            root.attributes["swarm.task.usage.output_tokens"]) == sc.expected_totals(flow)
    assert root.attributes["swarm.task.turns"] == len(sc.FLOWS[flow])
    assert root.attributes["swarm.task.output"] == sc.FLOWS[flow][-1][1]["content"]
    chats = sc.named(spans, "chat ")
    assert [(c.attributes["gen_ai.usage.input_tokens"], c.attributes["gen_ai.usage.output_tokens"])
            for c in chats] == [(r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"])
                                for _, r in sc.FLOWS[flow]]
    by_agent = sc.expected_by_agent(flow)
    for agent in sc.named(spans, "invoke_agent "):
        a = agent.attributes
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["swarm.agent.turns"]) == \
            by_agent[a["gen_ai.agent.name"]]
    assert all("swarm.usage.estimated" not in s.attributes for s in spans)
    assert all(s.attributes.get("enduser.id") == "streamer" for s in spans)
    assert list(root.attributes["swarm.task.agents"]) == [name for name, _ in sc.FLOWS[flow][:1]] + \
        [sc.FLOWS[flow][-1][0]]


def _estimate_from_server(llm, response_messages):
    """The documented estimate (ceil(chars / 4)), computed from what the server received and what
    the app got back, not from the instrumentation."""
    assistant = [m for m in response_messages if m["role"] == "assistant"]
    assert len(llm.requests) == len(assistant)
    ins, outs = [], []
    for body, message in zip(llm.requests, assistant):
        ins.append(sc.ceil4(len(sc.request_text(body["messages"]))))
        text = (message.get("content") or "") + "".join(
            c["function"]["name"] + c["function"]["arguments"] for c in message.get("tool_calls") or [])
        outs.append(sc.ceil4(len(text)))
    return ins, outs


@pytest.mark.parametrize("stream", [True, False])
def test_provider_without_usage_gets_a_flagged_estimate(instrumented, llm_no_usage, exporter, stream):
    client = sc.make_swarm(llm_no_usage)
    llm_no_usage.reset()
    triage, *_ = sc.build_agents()
    if stream:
        response = list(client.run(triage, REFUND, stream=True))[-1]["response"]
    else:
        response = client.run(triage, REFUND)
    ins, outs = _estimate_from_server(llm_no_usage, response.messages)
    spans = exporter.get_finished_spans()
    chats = sc.named(spans, "chat ")
    assert [c.attributes["gen_ai.usage.input_tokens"] for c in chats] == ins
    assert [c.attributes["gen_ai.usage.output_tokens"] for c in chats] == outs
    root = sc.root_of(spans)
    assert (root.attributes["swarm.task.usage.input_tokens"], root.attributes["swarm.task.usage.output_tokens"]) \
        == (sum(ins), sum(outs))
    for span in chats + sc.named(spans, "invoke_agent ") + [root]:
        assert span.attributes["swarm.usage.estimated"] is True


def test_stream_usage_switch_off(instrument, swarm_client, exporter, llm):
    instrument(stream_usage=False)
    llm.reset()
    items = _stream(swarm_client, REFUND)
    assert all("stream_options" not in body for body in llm.requests)
    ins, outs = _estimate_from_server(llm, items[-1]["response"].messages)
    root = sc.root_of(exporter.get_finished_spans())
    assert root.attributes["swarm.usage.estimated"] is True
    assert root.attributes["swarm.task.usage.input_tokens"] == sum(ins)


@pytest.mark.parametrize("stop_after", ["first_delta", "after_handoff"])
def test_generator_closed_early_ends_spans_cleanly(instrumented, swarm_client, exporter, caplog, stop_after):
    triage, *_ = sc.build_agents()
    with caplog.at_level(logging.DEBUG):
        gen = swarm_client.run(triage, REFUND, stream=True)
        starts = 0
        for item in gen:
            starts += item.get("delim") == "start"
            if stop_after == "first_delta" and "content" in item:
                break
            if stop_after == "after_handoff" and starts == 2 and "content" in item:
                break
        gen.close()
        del gen
        gc.collect()
    assert not [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    assert root.status.status_code == StatusCode.UNSET
    assert "swarm.task.output" not in root.attributes
    chats = sc.named(spans, "chat ")
    assert len(chats) == starts
    # the interrupted completion never got its usage: it is estimated and flagged
    assert chats[-1].attributes["swarm.usage.estimated"] is True
    assert root.attributes["swarm.usage.estimated"] is True
    assert root.attributes["swarm.task.turns"] == starts
    expected_agents = ["Triage"] if stop_after == "first_delta" else ["Triage", "Billing"]
    assert list(root.attributes["swarm.task.agents"]) == expected_agents
    assert all(s.end_time is not None for s in spans)


def test_stream_llm_error(instrumented, swarm_client, exporter):
    with pytest.raises(openai.InternalServerError):
        _stream(swarm_client, [{"role": "user", "content": "servererror now"}])
    spans = exporter.get_finished_spans()
    for span in (sc.root_of(spans), sc.named(spans, "chat ")[0], sc.named(spans, "invoke_agent ")[0]):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == "openai.InternalServerError"


def test_stream_tool_error(instrumented, swarm_client, exporter):
    with pytest.raises(sc.ToolFailure):
        _stream(swarm_client, [{"role": "user", "content": "the db crash again"}])
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    assert root.status.status_code == StatusCode.ERROR and root.attributes["error.type"] == "support_scenario.ToolFailure"
    tool = sc.named(spans, "execute_tool restart_service")[0]
    assert tool.status.status_code == StatusCode.ERROR
    assert root.attributes["swarm.task.usage.input_tokens"] == (
        sc.TRIAGE_CRASH["usage"]["prompt_tokens"] + sc.TECH_CRASH[0]["usage"]["prompt_tokens"])
