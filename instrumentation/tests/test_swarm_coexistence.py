"""Next to another OpenAI instrumentation (the official openai-v2 and genai-openai, logfire): its
chat spans, our agent spans as their parents, no duplicates, every token counted once, and the
task's user, session, conversation and agent on its spans too. A duplicate is recognised by what
the context holds (a model-call span opened for the request in flight), not by module names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# an environment of the test matrix may hold the instrumentation alone
GenAIOpenAIInstrumentor = pytest.importorskip("opentelemetry.instrumentation.genai.openai").OpenAIInstrumentor
OpenAIInstrumentor = pytest.importorskip("opentelemetry.instrumentation.openai_v2").OpenAIInstrumentor

from opentelemetry.instrumentation.openai_swarm import swarm_user  # noqa: E402

import support_scenario as sc  # noqa: E402

OFFICIAL = {"openai-v2": OpenAIInstrumentor, "genai-openai": GenAIOpenAIInstrumentor}

REFUND = [{"role": "user", "content": "I want a refund for my last invoice"}]


@pytest.fixture(params=[(name, order) for name in OFFICIAL for order in ("ours-first", "official-first")],
                ids=lambda p: "-".join(p))
def both(request, instrument, provider):
    name, order = request.param
    official = OFFICIAL[name]()
    if order == "ours-first":
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


@pytest.mark.parametrize("stream", [False, True])
def test_the_official_chat_spans_carry_the_user_session_conversation_and_agent(both, swarm_client, exporter,
                                                                                stream):
    with swarm_user("u-9", session_id="s-9", conversation_id="c-9"):
        _run(swarm_client, stream)
    spans = exporter.get_finished_spans()
    agents = {s.context.span_id: s for s in sc.named(spans, "invoke_agent ")}
    chats = sc.named(spans, "chat ")
    assert len(chats) == len(sc.FLOWS["refund"])
    for chat in chats:
        a = chat.attributes
        assert (a["enduser.id"], a["session.id"], a["gen_ai.conversation.id"]) == ("u-9", "s-9", "c-9")
        assert a["gen_ai.agent.name"] == agents[chat.parent.span_id].attributes["gen_ai.agent.name"]
    # and so do ours
    for span in spans:
        if span.instrumentation_scope.name == sc.OUR_SCOPE:
            assert span.attributes["enduser.id"] == "u-9"
    assert all(s.attributes["gen_ai.conversation.id"] == "c-9" for s in agents.values())


def test_an_llm_call_inside_a_tool_gets_the_identity_of_its_task(both, swarm_client, exporter, llm):
    """A GenAI span another instrumentation makes outside Swarm's own calls (a tool asking the LLM
    itself) is still in the task's trace, with the task's user and the calling agent."""
    import openai

    from swarm import Agent

    def summarize(context_variables):
        client = openai.OpenAI(base_url=llm.url, api_key="test", max_retries=0)
        r = client.chat.completions.create(model=sc.MODEL, messages=[{"role": "user", "content": "hello"}])
        return r.choices[0].message.content

    agent = Agent(name="Summarizer", model=sc.MODEL, functions=[summarize])
    with swarm_user("u-tool"):
        try:
            swarm_client.run(agent, [{"role": "user", "content": "hello"}], max_turns=1)
        except Exception:  # the script may not plan for this agent; the spans are what matter
            pass
    spans = exporter.get_finished_spans()
    theirs = [s for s in spans if s.instrumentation_scope.name != sc.OUR_SCOPE and s.name.startswith("chat")]
    assert theirs
    assert all(s.attributes.get("enduser.id") == "u-tool" for s in theirs)
    assert all(s.attributes.get("gen_ai.agent.name") == "Summarizer" for s in theirs)


LOGFIRE_APP = textwrap.dedent("""
    import json, os, sys
    import logfire
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user
    import support_scenario as sc

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ours = lambda: SwarmInstrumentor().instrument(tracer_provider=provider)
    if os.environ["ORDER"] == "ours-first":
        ours()
    logfire.configure(send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(exporter)])
    logfire.instrument_openai()
    if os.environ["ORDER"] != "ours-first":
        ours()

    class Server:
        url = os.environ["LLM_URL"]

    client = sc.make_swarm(Server)
    triage, *_ = sc.build_agents()
    with swarm_user("u-lf", session_id="s-lf"):
        response = client.run(triage, [{"role": "user", "content": "I want a refund for my last invoice"}],
                              stream=bool(os.environ.get("STREAM")))
        if os.environ.get("STREAM"):
            list(response)
    print(json.dumps([{"name": s.name, "scope": s.instrumentation_scope.name, "kind": s.kind.name,
                       "span_id": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
                       "attributes": {k: v if isinstance(v, (str, int, float, bool)) else list(v)
                                      for k, v in s.attributes.items()}}
                      for s in exporter.get_finished_spans()]))
""")


def _logfire_app(tmp_path, llm, order, stream=False):
    pytest.importorskip("logfire")
    app = tmp_path / "app.py"
    app.write_text(LOGFIRE_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGFIRE_"))}
    env.update({"ORDER": order, "LLM_URL": llm.url, "PYTHONPATH": str(Path(__file__).resolve().parent),
                "STREAM": "1" if stream else ""})
    res = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["ours-first", "logfire-first"])
def test_with_logfire_instrument_openai(tmp_path, llm, order):
    spans = _logfire_app(tmp_path, llm, order)
    agents = {s["span_id"]: s for s in spans if s["name"].startswith("invoke_agent ")}
    chats = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
    # one chat span per completion, logfire's, each under our agent span: none of ours beside it
    assert len(chats) == len(sc.FLOWS["refund"])
    assert {c["scope"] for c in chats} != {sc.OUR_SCOPE} and all(c["scope"] != sc.OUR_SCOPE for c in chats)
    for chat in chats:
        assert chat["parent"] in agents
        assert chat["attributes"]["enduser.id"] == "u-lf" and chat["attributes"]["session.id"] == "s-lf"
        assert chat["attributes"]["gen_ai.agent.name"] == agents[chat["parent"]]["attributes"]["gen_ai.agent.name"]
    root = next(s for s in spans if s["name"] == "invoke_workflow swarm")
    assert (root["attributes"]["swarm.task.usage.input_tokens"],
            root["attributes"]["swarm.task.usage.output_tokens"]) == sc.expected_totals("refund")


def test_with_logfire_a_streamed_completion_keeps_its_user_and_agent(tmp_path, llm):
    """logfire records a streamed completion's usage in a log span when the stream ends, in a context
    it rebuilds from the request's traceparent (our agent span, none of our context): that span still
    gets the task's user and the agent whose span it is under, so its tokens count for both."""
    spans = _logfire_app(tmp_path, llm, "logfire-first", stream=True)
    agents = {s["span_id"]: s for s in spans if s["name"].startswith("invoke_agent ")}
    usage = [s for s in spans if s["attributes"].get("gen_ai.usage.input_tokens") is not None
             and s["scope"] != sc.OUR_SCOPE]
    assert len(usage) == len(sc.FLOWS["refund"])  # one per completion, none of ours beside them
    for span in usage:
        a = span["attributes"]
        assert span["parent"] in agents, span["name"]
        assert (a["enduser.id"], a["session.id"]) == ("u-lf", "s-lf")
        assert a["gen_ai.agent.name"] == agents[span["parent"]]["attributes"]["gen_ai.agent.name"]
    assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in usage) == sc.expected_totals("refund")[0]
