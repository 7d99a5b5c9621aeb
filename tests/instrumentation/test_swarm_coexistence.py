"""Next to the official OpenAI instrumentation: its chat spans, our agent spans as their parents,
no duplicates, and every token counted once."""

from __future__ import annotations

import pytest
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import support_scenario as sc

REFUND = [{"role": "user", "content": "I want a refund for my last invoice"}]


@pytest.fixture(params=["ours-first", "official-first"])
def both(request, instrument, provider):
    official = OpenAIInstrumentor()
    if request.param == "ours-first":
        instrument()
        official.instrument(tracer_provider=provider)
    else:
        official.instrument(tracer_provider=provider)
        instrument()
    yield
    official.uninstrument()


def _run(client, stream):
    triage, *_ = sc.build_agents()
    if stream:
        return list(client.run(triage, REFUND, stream=True))[-1]["response"]
    return client.run(triage, REFUND)


@pytest.mark.parametrize("stream", [False, True])
def test_with_the_official_instrumentation(both, swarm_client, exporter, stream):
    response = _run(swarm_client, stream)
    assert response.messages[-1]["content"] == sc.BILLING_REFUND[2]["content"]
    spans = exporter.get_finished_spans()
    flow = sc.FLOWS["refund"]

    chats = sc.named(spans, "chat ")
    assert len(chats) == len(flow)  # one per completion: theirs, none of ours
    assert sc.OUR_SCOPE not in {c.instrumentation_scope.name for c in chats}
    agents = {s.context.span_id: s for s in sc.named(spans, "invoke_agent ")}
    for chat, (agent_name, reply) in zip(chats, flow):
        parent = agents[chat.parent.span_id]  # our agent span is the parent of their chat span
        assert parent.attributes["gen_ai.agent.name"] == agent_name
        assert chat.context.trace_id == parent.context.trace_id
        # they read the usage chunk we asked for, so their figures are exact too
        assert chat.attributes["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]

    root = sc.root_of(spans)
    assert (root.attributes["swarm.task.usage.input_tokens"],
            root.attributes["swarm.task.usage.output_tokens"]) == sc.expected_totals("refund")
    by_agent = sc.expected_by_agent("refund")
    for agent in agents.values():
        a = agent.attributes
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["swarm.agent.turns"]) == \
            by_agent[a["gen_ai.agent.name"]]
    # counted once per level: chat spans (theirs) sum to the agent sums, which sum to the task total
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == \
        sum(a.attributes["gen_ai.usage.input_tokens"] for a in agents.values()) == \
        root.attributes["swarm.task.usage.input_tokens"]
    assert all("swarm.usage.estimated" not in s.attributes for s in spans)


def test_without_the_official_instrumentation_chat_spans_are_ours(instrumented, swarm_client, exporter):
    _run(swarm_client, stream=False)
    chats = sc.named(exporter.get_finished_spans(), "chat ")
    assert len(chats) == len(sc.FLOWS["refund"])
    assert {c.instrumentation_scope.name for c in chats} == {sc.OUR_SCOPE}


def test_official_uninstrumented_again_brings_our_chat_spans_back(instrument, provider, swarm_client, exporter):
    instrument()
    official = OpenAIInstrumentor()
    official.instrument(tracer_provider=provider)
    official.uninstrument()
    _run(swarm_client, stream=True)
    chats = sc.named(exporter.get_finished_spans(), "chat ")
    assert {c.instrumentation_scope.name for c in chats} == {sc.OUR_SCOPE}
    assert len(chats) == len(sc.FLOWS["refund"])
