"""OpenAI Agents SDK apps through swarmlens' Agents SDK tracing processor: the real SDK, the real
openai client and the scripted LLM's Responses API over real HTTP; one task is one trace with the
contract's spans, handoffs and exact usage."""

from __future__ import annotations

import asyncio

import openai
import pytest

agents = pytest.importorskip("agents")

from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool  # noqa: E402

from opentelemetry.instrumentation.openai_swarm import swarm_user  # noqa: E402
from opentelemetry.instrumentation.openai_swarm.agents_sdk import SCOPE, instrument_agents  # noqa: E402
from support_llm import ScriptedLLM  # noqa: E402

MODEL = "gpt-4o-mini"


def usage(p, c, **extra):
    return {"prompt_tokens": p, "completion_tokens": c, **extra}


TRIAGE = [{"when": "refund", "tool_calls": [{"name": "transfer_to_billing", "arguments": {}}],
           "usage": usage(61, 8)}]
BILLING = [
    {"when": "refund", "tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-9"}}],
     "usage": usage(95, 11, cached_tokens=32)},
    {"when": "refund", "content": "Your refund for INV-9 is on its way.", "usage": usage(140, 17, reasoning_tokens=5)},
]
SCRIPT = {"model": MODEL, "agents": {
    "triage": {"match": "[agent:triage]", "name": "Triage", "replies": TRIAGE},
    "billing": {"match": "[agent:billing]", "name": "Billing", "replies": BILLING},
}}
TOTALS = (61 + 95 + 140, 8 + 11 + 17)


@pytest.fixture(scope="module")
def llm():
    with ScriptedLLM(SCRIPT) as server:
        yield server


@pytest.fixture
def processor(provider):
    p = instrument_agents(tracer_provider=provider)
    yield p
    agents.set_trace_processors([])


def build(llm):
    client = openai.AsyncOpenAI(base_url=llm.url, api_key="test", max_retries=0)
    model = OpenAIResponsesModel(model=MODEL, openai_client=client)
    looked_up = []

    @function_tool
    def lookup_invoice(invoice_id: str) -> str:
        """Find an invoice by id."""
        looked_up.append(invoice_id)
        return f"Invoice {invoice_id}: $49.00, paid"

    billing = Agent(name="Billing", instructions="[agent:billing] You handle refunds.", model=model,
                    tools=[lookup_invoice])
    triage = Agent(name="Triage", instructions="[agent:triage] You route customers.", model=model,
                   handoffs=[billing])
    return triage, looked_up


def _run(triage, stream: bool):
    config = RunConfig(workflow_name="support desk")
    async def go():
        if not stream:
            return await Runner.run(triage, "I want a refund for my last invoice", run_config=config)
        result = Runner.run_streamed(triage, "I want a refund for my last invoice", run_config=config)
        async for _ in result.stream_events():
            pass
        return result

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_an_agents_sdk_run_is_one_task_with_handoffs_and_exact_usage(processor, exporter, llm, stream):
    llm.reset()
    triage, looked_up = build(llm)
    with swarm_user("agents-user", session_id="s-1"):
        result = _run(triage, stream)
    assert result.final_output == "Your refund for INV-9 is on its way."
    assert looked_up == ["INV-9"]
    spans = exporter.get_finished_spans()
    assert {s.instrumentation_scope.name for s in spans} == {SCOPE}
    assert len({s.context.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent is None]
    r = root.attributes
    assert root.name == "invoke_workflow support desk"
    assert (r["gen_ai.operation.name"], r["gen_ai.workflow.name"]) == ("invoke_workflow", "support desk")
    assert (r["swarm.task.usage.input_tokens"], r["swarm.task.usage.output_tokens"]) == TOTALS
    assert (r["swarm.task.usage.cache_read.input_tokens"], r["swarm.task.usage.reasoning.output_tokens"]) == (32, 5)
    assert list(r["swarm.task.agents"]) == ["Triage", "Billing"]
    assert (r["swarm.task.handoffs"], r["swarm.task.turns"], r["swarm.task.final_agent"]) == (1, 3, "Billing")
    assert r["gen_ai.agent.name"] == "Triage"
    assert r["swarm.task.input"] == "I want a refund for my last invoice"
    assert r["swarm.task.output"] == "Your refund for INV-9 is on its way."
    assert all(s.attributes["enduser.id"] == "agents-user" and s.attributes["session.id"] == "s-1" for s in spans)

    agent_spans = {s.attributes["gen_ai.agent.name"]: s for s in spans if s.name.startswith("invoke_agent ")}
    assert set(agent_spans) == {"Triage", "Billing"}
    t, b = agent_spans["Triage"].attributes, agent_spans["Billing"].attributes
    assert (t["gen_ai.usage.input_tokens"], t["gen_ai.usage.output_tokens"], t["swarm.agent.turns"]) == (61, 8, 1)
    assert (b["gen_ai.usage.input_tokens"], b["gen_ai.usage.output_tokens"], b["swarm.agent.turns"]) == (235, 28, 2)
    assert b["swarm.handoff.from"] == "Triage" and "swarm.handoff.from" not in t
    assert t["gen_ai.request.model"] == b["gen_ai.request.model"] == MODEL  # from their responses

    chats = [s for s in spans if s.name.startswith("chat ")]
    assert sorted((c.attributes["gen_ai.usage.input_tokens"], c.attributes["gen_ai.usage.output_tokens"])
                  for c in chats) == [(61, 8), (95, 11), (140, 17)]
    assert all(c.name == f"chat {MODEL}" and c.attributes["gen_ai.request.model"] == MODEL for c in chats)
    by_id = {s.context.span_id: s for s in spans}
    assert all(by_id[c.parent.span_id].name.startswith("invoke_agent ") for c in chats)
    # the counting rule: chat spans sum to the agent spans, which sum to the task totals
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == \
        t["gen_ai.usage.input_tokens"] + b["gen_ai.usage.input_tokens"] == TOTALS[0]

    (handoff,) = [s for s in spans if s.attributes.get("swarm.handoff.to")]
    assert handoff.name == "execute_tool transfer_to_billing" and handoff.attributes["swarm.handoff.to"] == "Billing"
    assert handoff.attributes["gen_ai.agent.name"] == "Triage"
    (tool,) = [s for s in spans if s.name == "execute_tool lookup_invoice"]
    assert tool.attributes["gen_ai.agent.name"] == "Billing"
    assert "swarm.usage.estimated" not in r


def test_requests_reach_the_scripted_responses_api(processor, exporter, llm):
    llm.reset()
    triage, _ = build(llm)
    _run(triage, stream=False)
    assert [("instructions" in body, isinstance(body.get("input"), (str, list))) for body in llm.requests] == \
        [(True, True)] * 3


class _FutureSpanData(agents.tracing.span_data.SpanData):
    """A span type this module does not know (as a later SDK release may add)."""

    @property
    def type(self) -> str:
        return "something_new"

    def export(self) -> dict:
        return {"type": self.type}


def test_every_span_type_keeps_the_chain_from_a_model_call_to_its_agent(processor, exporter):
    """Guardrail spans are recorded; task, turn, custom and unknown spans are links of the chain:
    a model call inside them still counts for its agent, and the task's sums hold."""
    from agents.tracing import agent_span, custom_span, generation_span, guardrail_span, trace
    from agents.tracing.setup import get_trace_provider

    with swarm_user("chain-user"):
        with trace("chain"):
            with agent_span(name="Planner"):
                with guardrail_span(name="no_pii", triggered=True):
                    pass
                with custom_span("prep", {}):
                    with generation_span(model="gpt-4o", usage={"input_tokens": 10, "output_tokens": 3}):
                        pass
                    future = get_trace_provider().create_span(span_data=_FutureSpanData())
                    with future:
                        with generation_span(model="gpt-4o-mini", usage={"input_tokens": 7, "output_tokens": 2}):
                            pass
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (root,) = [s for s in spans if s.parent is None]
    (planner,) = [s for s in spans if s.name == "invoke_agent Planner"]
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.name)
    assert [c.name for c in chats] == ["chat gpt-4o", "chat gpt-4o-mini"]
    assert all(by_id[c.parent.span_id] is planner and c.attributes["gen_ai.agent.name"] == "Planner"
               for c in chats)
    p = planner.attributes
    assert (p["gen_ai.usage.input_tokens"], p["gen_ai.usage.output_tokens"], p["swarm.agent.turns"]) == (17, 5, 2)
    r = root.attributes
    assert (r["swarm.task.usage.input_tokens"], r["swarm.task.usage.output_tokens"], r["swarm.task.turns"]) == \
        (17, 5, 2)
    (guard,) = [s for s in spans if s.name == "guardrail no_pii"]
    assert guard.attributes["swarm.guardrail.triggered"] is True
    assert guard.attributes["gen_ai.agent.name"] == "Planner" and guard.attributes["enduser.id"] == "chain-user"
    # no span for the custom and unknown ones: every exported span is one of the contract's or a guardrail
    assert {s.name.split(" ")[0] for s in spans} == {"invoke_workflow", "invoke_agent", "chat", "guardrail"}


def test_turn_spans_of_current_releases_count_for_their_agent(processor, exporter):
    """openai-agents >= 0.24 wraps each loop turn in a turn span (inside a task span)."""
    span_data = agents.tracing.span_data
    if not hasattr(span_data, "TurnSpanData"):
        pytest.skip("this openai-agents release has no task and turn spans")
    from agents.tracing import agent_span, generation_span, trace
    from agents.tracing.setup import get_trace_provider

    with trace("turns"):
        with get_trace_provider().create_span(span_data=span_data.TaskSpanData(name="turns")):
            with agent_span(name="Solo"):
                for turn in (1, 2):
                    with get_trace_provider().create_span(span_data=span_data.TurnSpanData(turn, "Solo")):
                        with generation_span(model="gpt-4o", usage={"input_tokens": 5, "output_tokens": turn}):
                            pass
    spans = exporter.get_finished_spans()
    (solo,) = [s for s in spans if s.name == "invoke_agent Solo"]
    assert (solo.attributes["gen_ai.usage.input_tokens"], solo.attributes["gen_ai.usage.output_tokens"],
            solo.attributes["swarm.agent.turns"]) == (10, 3, 2)
    assert all(s.attributes.get("gen_ai.agent.name") == "Solo" for s in spans if s.name.startswith("chat "))
