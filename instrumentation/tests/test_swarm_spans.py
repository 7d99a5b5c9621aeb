"""Non-streamed tasks: the span tree, attributes, token sums, users, errors, safety."""

from __future__ import annotations

import json
import logging
import threading

import openai
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

import support_scenario as sc
from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user
from opentelemetry.instrumentation.openai_swarm import chat as swarm_chat
from opentelemetry.instrumentation.openai_swarm import task as swarm_task
from opentelemetry.instrumentation.openai_swarm import tools as swarm_tools
from opentelemetry.instrumentation.openai_swarm import utils as swarm_utils
from swarm import Swarm

REFUND = [{"role": "user", "content": "I want a refund for my last invoice"}]
OUTAGE = [{"role": "user", "content": "Is there an outage? Your API fails."}]
HELLO = [{"role": "user", "content": "hello there"}]


def _assert_every_span(spans, **attrs):
    for s in spans:
        assert s.attributes["gen_ai.provider.name"] == "openai", s.name
        assert s.attributes["gen_ai.operation.name"] == s.name.split(" ")[0], s.name
        for k, v in attrs.items():
            assert s.attributes.get(k) == v, (s.name, k)


def test_refund_task_has_the_contract_shape(instrumented, swarm_client, exporter):
    triage, billing, _, calls = sc.build_agents()
    response = swarm_client.run(triage, REFUND, context_variables={"user_id": "cust-1", "session_id": "sess-1"})

    assert response.agent.name == "Billing"
    assert response.messages[-1]["content"] == sc.BILLING_REFUND[2]["content"]
    assert ("lookup_invoice", "INV-7", "cust-1") in calls

    spans = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    root = sc.root_of(spans)
    assert root.kind == SpanKind.INTERNAL
    _assert_every_span(spans, **{"enduser.id": "cust-1", "session.id": "sess-1"})

    flow = sc.FLOWS["refund"]
    exp_in, exp_out = sc.expected_totals("refund")
    a = root.attributes
    assert a["gen_ai.workflow.name"] == "swarm"
    assert a["gen_ai.agent.name"] == "Triage"
    assert a["swarm.task.input"] == REFUND[0]["content"]
    assert a["swarm.task.output"] == sc.BILLING_REFUND[2]["content"]
    assert list(a["swarm.task.agents"]) == ["Triage", "Billing"]
    assert a["swarm.task.final_agent"] == "Billing"
    assert a["swarm.task.handoffs"] == 1
    assert a["swarm.task.turns"] == len(flow)
    assert (a["swarm.task.usage.input_tokens"], a["swarm.task.usage.output_tokens"]) == (exp_in, exp_out)
    assert "swarm.usage.estimated" not in a

    agents = sc.children_of(spans, root)
    assert [s.name for s in agents] == ["invoke_agent Triage", "invoke_agent Billing"]
    by_agent = sc.expected_by_agent("refund")
    for span in agents:
        name = span.attributes["gen_ai.agent.name"]
        assert span.kind == SpanKind.INTERNAL
        assert span.attributes["gen_ai.request.model"] == sc.MODEL
        assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"],
                span.attributes["swarm.agent.turns"]) == by_agent[name]
    assert "swarm.handoff.from" not in agents[0].attributes
    assert agents[1].attributes["swarm.handoff.from"] == "Triage"

    triage_children = [s.name for s in sc.children_of(spans, agents[0])]
    billing_children = [s.name for s in sc.children_of(spans, agents[1])]
    assert triage_children == ["chat gpt-4o-mini", "execute_tool transfer_to_billing"]
    assert billing_children == ["chat gpt-4o-mini", "execute_tool lookup_invoice", "chat gpt-4o-mini",
                                "execute_tool issue_refund", "chat gpt-4o-mini"]

    chats = sc.named(spans, "chat ")
    assert len(chats) == len(flow)
    for span, (agent_name, reply) in zip(chats, flow):
        ca = span.attributes
        assert span.kind == SpanKind.CLIENT
        assert ca["gen_ai.agent.name"] == agent_name
        assert ca["gen_ai.request.model"] == ca["gen_ai.response.model"] == sc.MODEL
        assert ca["gen_ai.response.id"].startswith("chatcmpl-")
        assert list(ca["gen_ai.response.finish_reasons"]) == ["tool_calls" if "tool_calls" in reply else "stop"]
        assert ca["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]
        assert ca["gen_ai.usage.output_tokens"] == reply["usage"]["completion_tokens"]
        assert ca.get("gen_ai.usage.cache_read.input_tokens") == reply["usage"].get("cached_tokens")
        assert ca.get("gen_ai.usage.reasoning.output_tokens") == reply["usage"].get("reasoning_tokens")
        assert "swarm.usage.estimated" not in ca

    # The counting rule: each level sums to the same totals, and nothing is counted twice.
    for key, total in (("input", exp_in), ("output", exp_out)):
        assert sum(s.attributes[f"gen_ai.usage.{key}_tokens"] for s in chats) == total
        assert sum(s.attributes[f"gen_ai.usage.{key}_tokens"] for s in agents) == total

    tools = sc.named(spans, "execute_tool ")
    call_ids = [c["id"] for m in response.messages if m.get("tool_calls") for c in m["tool_calls"]]
    assert [t.attributes["gen_ai.tool.call.id"] for t in tools] == call_ids
    for t in tools:
        assert t.attributes["gen_ai.tool.type"] == "function"
        assert t.attributes["gen_ai.tool.name"] == t.name.split(" ", 1)[1]
    assert tools[0].attributes["swarm.handoff.to"] == "Billing"
    assert tools[0].attributes["gen_ai.agent.name"] == "Triage"
    assert all("swarm.handoff.to" not in t.attributes for t in tools[1:])
    assert all(s.status.status_code == StatusCode.UNSET for s in spans)


def test_handoff_through_a_result(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    response = swarm_client.run(triage, OUTAGE)
    assert response.context_variables["routed"] == "tech"
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    assert list(root.attributes["swarm.task.agents"]) == ["Triage", "Tech"]
    assert (root.attributes["swarm.task.usage.input_tokens"],
            root.attributes["swarm.task.usage.output_tokens"]) == sc.expected_totals("outage")
    handoff = sc.named(spans, "execute_tool transfer_to_tech")[0]
    assert handoff.attributes["swarm.handoff.to"] == "Tech"
    assert "enduser.id" not in root.attributes and "session.id" not in root.attributes


def _hello_root(swarm_client, exporter, **run_kwargs):
    exporter.clear()
    triage, *_ = sc.build_agents()
    swarm_client.run(triage, HELLO, **run_kwargs)
    spans = exporter.get_finished_spans()
    return sc.root_of(spans), spans


def test_user_precedence_explicit_then_baggage_then_context_variables(instrumented, swarm_client, exporter):
    cv = {"user_id": "from-vars", "session_id": "sess-vars"}
    root, spans = _hello_root(swarm_client, exporter, context_variables=cv)
    _assert_every_span(spans, **{"enduser.id": "from-vars", "session.id": "sess-vars"})

    ctx = baggage.set_baggage("enduser.id", "from-baggage")
    token = otel_context.attach(ctx)
    try:
        root, spans = _hello_root(swarm_client, exporter, context_variables=cv)
        _assert_every_span(spans, **{"enduser.id": "from-baggage", "session.id": "sess-vars"})
        with swarm_user("explicit", session_id="sess-explicit", conversation_id="conv-9"):
            root, spans = _hello_root(swarm_client, exporter, context_variables=cv)
            _assert_every_span(spans, **{"enduser.id": "explicit", "session.id": "sess-explicit"})
            assert root.attributes["gen_ai.conversation.id"] == "conv-9"
            with swarm_user(session_id="inner-session"):  # inherits the user
                root, spans = _hello_root(swarm_client, exporter)
                _assert_every_span(spans, **{"enduser.id": "explicit", "session.id": "inner-session"})
    finally:
        otel_context.detach(token)

    @swarm_user("decorated", session_id="s-dec")
    def handle():
        return _hello_root(swarm_client, exporter, context_variables=cv)

    root, spans = handle()
    _assert_every_span(spans, **{"enduser.id": "decorated", "session.id": "s-dec"})
    root, spans = _hello_root(swarm_client, exporter)  # nothing leaks out of the decorator
    assert "enduser.id" not in root.attributes


def test_configurable_context_variable_keys(instrument, swarm_client, exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_SWARM_USER_KEY", "customer")
    instrument(session_key="")
    root, spans = _hello_root(swarm_client, exporter, context_variables={"customer": 42, "session_id": "ignored"})
    _assert_every_span(spans, **{"enduser.id": "42"})
    assert all("session.id" not in s.attributes for s in spans)


class _SpyCompletions:
    """Records the exception the real client raised, to prove the app gets that very object."""

    def __init__(self, real):
        self.real = real
        self.raised = []

    def create(self, **kwargs):
        try:
            return self.real.create(**kwargs)
        except Exception as exc:
            self.raised.append(exc)
            raise


@pytest.mark.parametrize("keyword,exc_type,status", [("ratelimit", openai.RateLimitError, 429),
                                                     ("servererror", openai.InternalServerError, 500)])
def test_llm_error_reaches_the_app_unchanged_and_is_recorded(instrumented, swarm_client, exporter, keyword,
                                                             exc_type, status):
    spy = _SpyCompletions(swarm_client.client.chat.completions)
    swarm_client.client.chat.completions = spy
    triage, *_ = sc.build_agents()
    with pytest.raises(exc_type) as info:
        swarm_client.run(triage, [{"role": "user", "content": f"please {keyword}"}])
    assert info.value is spy.raised[0] and info.value.status_code == status
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    chat = sc.named(spans, "chat ")[0]
    agent = sc.named(spans, "invoke_agent ")[0]
    for span in (chat, agent, root):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == f"openai.{exc_type.__name__}"  # as the official instrumentation writes it
        events = [e for e in span.events if e.name == "exception"]
        assert len(events) == 1 and events[0].attributes["exception.type"].endswith(exc_type.__name__)
    assert root.attributes["swarm.task.turns"] == 1
    assert root.attributes["swarm.task.usage.input_tokens"] == 0
    assert "gen_ai.usage.input_tokens" not in chat.attributes


def test_tool_error_reaches_the_app_unchanged_and_is_recorded(instrumented, swarm_client, exporter):
    triage, _, _, calls = sc.build_agents()
    with pytest.raises(sc.ToolFailure, match="could not restart db") as info:
        swarm_client.run(triage, [{"role": "user", "content": "the db crash again"}])
    assert calls[-1] == ("restart_service", "db")
    assert info.value.__traceback__ is not None
    spans = exporter.get_finished_spans()
    tool = sc.named(spans, "execute_tool restart_service")[0]
    tech = sc.named(spans, "invoke_agent Tech")[0]
    root = sc.root_of(spans)
    for span in (tool, tech, root):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == "support_scenario.ToolFailure"
        assert [e.attributes["exception.message"] for e in span.events if e.name == "exception"] == \
            ["could not restart db"]
    assert root.attributes["swarm.task.usage.input_tokens"] == (
        sc.TRIAGE_CRASH["usage"]["prompt_tokens"] + sc.TECH_CRASH[0]["usage"]["prompt_tokens"])
    assert sc.named(spans, "invoke_agent Triage")[0].status.status_code == StatusCode.UNSET


def test_max_turns(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    response = swarm_client.run(triage, [{"role": "user", "content": "loop forever"}], max_turns=3)
    # Swarm counts history messages: each turn adds an assistant message and one tool result.
    completions = sum(1 for m in response.messages if m["role"] == "assistant")
    assert completions == 2
    spans = exporter.get_finished_spans()
    root = sc.root_of(spans)
    assert root.attributes["swarm.task.turns"] == completions
    assert root.attributes["swarm.task.usage.input_tokens"] == sum(
        r["usage"]["prompt_tokens"] for r in sc.TRIAGE_LOOP[:completions])
    assert len(sc.named(spans, "execute_tool ping")) == completions
    assert "swarm.task.output" not in root.attributes  # the last turn was a tool call
    assert root.attributes["swarm.task.final_agent"] == "Triage"


def test_unknown_tool_is_recorded_and_the_task_goes_on(instrumented, swarm_client, exporter):
    triage, *_ = sc.build_agents()
    response = swarm_client.run(triage, [{"role": "user", "content": "ghost tool please"}])
    assert response.messages[1]["content"] == "Error: Tool no_such_tool not found."
    spans = exporter.get_finished_spans()
    ghost = sc.named(spans, "execute_tool no_such_tool")[0]
    assert ghost.status.status_code == StatusCode.ERROR and ghost.attributes["error.type"] == "ToolNotFound"
    assert sc.root_of(spans).attributes["swarm.task.output"] == sc.TRIAGE_MISSING[1]["content"]


def test_concurrent_runs_give_separate_correct_traces(instrumented, llm, exporter):
    client = sc.make_swarm(llm)  # one Swarm shared by all threads, as apps do
    flows = ["refund", "outage", "hello", "refund", "outage", "hello"]
    texts = {"refund": REFUND, "outage": OUTAGE, "hello": HELLO}
    errors = []
    barrier = threading.Barrier(len(flows))

    def worker(i, flow):
        try:
            triage, *_ = sc.build_agents()
            barrier.wait()
            client.run(triage, texts[flow], context_variables={"user_id": f"user-{i}"})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(flows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    spans = exporter.get_finished_spans()
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    assert len(by_trace) == len(flows)
    seen = set()
    for trace_spans in by_trace.values():
        root = sc.root_of(trace_spans)
        user = root.attributes["enduser.id"]
        flow = flows[int(user.split("-")[1])]
        seen.add(user)
        _assert_every_span(trace_spans, **{"enduser.id": user})
        assert (root.attributes["swarm.task.usage.input_tokens"],
                root.attributes["swarm.task.usage.output_tokens"]) == sc.expected_totals(flow)
        assert root.attributes["swarm.task.turns"] == len(sc.FLOWS[flow])
        assert len(sc.named(trace_spans, "chat ")) == len(sc.FLOWS[flow])
    assert len(seen) == len(flows)


def test_uninstrument_restores_the_originals_and_behaviour(provider, exporter, llm):
    names = ("run", "run_and_stream", "get_chat_completion", "handle_tool_calls")
    originals = {n: Swarm.__dict__[n] for n in names}
    client = sc.make_swarm(llm)  # created before instrument(): still covered
    triage, *_ = sc.build_agents()
    plain = client.run(triage, REFUND)

    inst = SwarmInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        assert all(Swarm.__dict__[n] is not originals[n] for n in names)
        traced = client.run(triage, REFUND)
        assert len(exporter.get_finished_spans()) > 0
    finally:
        inst.uninstrument()
    assert {n: Swarm.__dict__[n] for n in names} == originals
    assert all(Swarm.__dict__[n] is originals[n] for n in names)
    assert traced == plain  # same messages, agent and context variables
    exporter.clear()
    again = client.run(triage, REFUND)
    assert again == plain and exporter.get_finished_spans() == ()


def test_suppressed_instrumentation_records_nothing(instrumented, swarm_client, exporter, llm):
    triage, *_ = sc.build_agents()
    llm.reset()
    with suppress_instrumentation():
        response = swarm_client.run(triage, HELLO)
        items = list(swarm_client.run(triage, HELLO, stream=True))
    assert response.messages[-1]["content"] == sc.TRIAGE_HELLO["content"]
    assert items[-1]["response"].messages[-1]["content"] == sc.TRIAGE_HELLO["content"]
    assert exporter.get_finished_spans() == ()
    assert all("stream_options" not in body for body in llm.requests)


def test_internal_failures_are_logged_and_never_reach_the_app(instrumented, swarm_client, exporter, monkeypatch,
                                                              caplog):
    triage, *_ = sc.build_agents()
    expected = swarm_client.run(triage, REFUND)

    def boom(*args, **kwargs):
        raise ValueError("instrumentation bug")

    for target, attr in ((swarm_utils, "resolve_user"), (swarm_chat._Chat, "on_response"),
                         (swarm_tools._ToolBatch, "_start"), (swarm_task._Task, "finish"),
                         (swarm_chat._Chat, "on_chunk"), (swarm_task._Task, "stretch_for")):
        with monkeypatch.context() as m:
            m.setattr(target, attr, boom)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.openai_swarm"):
                assert swarm_client.run(triage, REFUND) == expected, attr
                streamed = list(swarm_client.run(triage, REFUND, stream=True))
            assert streamed[-1]["response"].messages[-1]["content"] == expected.messages[-1]["content"], attr
            assert any("Swarm instrumentation" in r.getMessage() and "failed" in r.getMessage()
                       for r in caplog.records), attr


def test_attributes_are_sanitized_and_truncated(instrument, swarm_client, exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH", "64")
    instrument()
    huge = "hello " + "x" * 10_000
    # bytes with invalid UTF-8, a non-string, and a lone surrogate (what surrogateescape makes of
    # invalid UTF-8 in a str; exporters cannot encode it)
    root, spans = _hello_root(swarm_client, exporter, context_variables={"user_id": b"\xff\xfeuser",
                                                                         "session_id": "s-\udcff"})
    assert root.attributes["enduser.id"] == "\ufffd\ufffduser"
    assert root.attributes["session.id"] == "s-?"
    root, spans = _hello_root(swarm_client, exporter, context_variables={"user_id": 12345})
    assert root.attributes["enduser.id"] == "12345"
    exporter.clear()
    triage, *_ = sc.build_agents()
    swarm_client.run(triage, [{"role": "user", "content": huge}])
    root = sc.root_of(exporter.get_finished_spans())
    text = root.attributes["swarm.task.input"]
    assert len(text) == 64 and text.endswith("…") and text.startswith("hello xxx")
    text.encode("utf-8")

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    assert encode_spans(exporter.get_finished_spans()).SerializeToString()


def test_content_switches(instrument, swarm_client, exporter, monkeypatch):
    instrument(capture_content=False)
    root, spans = _hello_root(swarm_client, exporter)
    assert "swarm.task.input" not in root.attributes and "swarm.task.output" not in root.attributes
    assert all("gen_ai.input.messages" not in s.attributes for s in spans)

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrument()
    exporter.clear()
    triage, *_ = sc.build_agents()
    swarm_client.run(triage, REFUND, context_variables={"user_id": "u"})
    spans = exporter.get_finished_spans()
    first_chat = sc.named(spans, "chat ")[0]
    inputs = json.loads(first_chat.attributes["gen_ai.input.messages"])
    # the agent's instructions are the first message of the history Swarm sends, and stay there
    assert inputs[0]["role"] == "system" and inputs[0]["parts"][0]["content"].startswith("[agent:triage]")
    assert inputs[1:] == [{"role": "user", "parts": [{"type": "text", "content": REFUND[0]["content"]}]}]
    assert "gen_ai.system_instructions" not in first_chat.attributes
    last_out = json.loads(sc.named(spans, "chat ")[-1].attributes["gen_ai.output.messages"])
    assert last_out[0]["parts"][0]["content"] == sc.BILLING_REFUND[2]["content"]
    lookup = sc.named(spans, "execute_tool lookup_invoice")[0]
    assert json.loads(lookup.attributes["gen_ai.tool.call.arguments"]) == {"invoice_id": "INV-7"}
    assert lookup.attributes["gen_ai.tool.call.result"].startswith("Invoice INV-7")


def test_a_task_inside_an_app_span_starts_its_own_trace_and_links_back(instrumented, swarm_client, exporter,
                                                                       provider):
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /chat") as app_span:
        triage, *_ = sc.build_agents()
        swarm_client.run(triage, HELLO)
    spans = exporter.get_finished_spans()
    root = sc.root_of([s for s in spans if s.name != "POST /chat"])
    assert root.parent is None
    assert root.context.trace_id != app_span.get_span_context().trace_id
    assert [link.context.span_id for link in root.links] == [app_span.get_span_context().span_id]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_only_the_functions_a_tool_call_names_get_a_stand_in(instrumented):
    """Swarm's handle_tool_calls gets the functions no tool call names as they are, the named one
    behind a stand-in with its name that records the execute_tool span."""
    import types

    from swarm.types import Agent

    def lookup():
        return "found"

    def idle():
        return "never called"

    tel = instrumented._telemetry
    task = swarm_task._Task(tel, Agent(name="A", functions=[lookup, idle]),
                            [{"role": "user", "content": "hi"}], {})
    seen = {}

    def original(tool_calls, functions, context_variables, debug):
        seen["functions"] = functions
        return types.SimpleNamespace(agent=None, messages=[], context_variables={})

    call = types.SimpleNamespace(id="call_1", function=types.SimpleNamespace(name="lookup", arguments="{}"))
    token = otel_context.attach(task.ctx)
    try:
        swarm_tools.traced_handle_tool_calls(tel)(original, None, ([call], [lookup, idle], {}, False), {})
    finally:
        otel_context.detach(token)
        task.finish()
    stand_in, passed_idle = seen["functions"]
    assert passed_idle is idle
    assert stand_in is not lookup and stand_in.__name__ == "lookup" and stand_in.__wrapped__ is lookup


def test_an_agent_stretch_freed_without_end_leaves_no_live_entry(instrumented):
    import gc

    from swarm.types import Agent

    task = swarm_task._Task(instrumented._telemetry, None, [], {})
    stretch = task.stretch_for(Agent(name="A"), "gpt-4o")
    key = stretch.span_id
    assert swarm_task._LIVE_STRETCHES[key]() is stretch
    task.stretch = None
    del stretch
    gc.collect()
    assert key not in swarm_task._LIVE_STRETCHES
    task.finish()


