"""The per-span cost of swarmlens' OpenAI Agents SDK tracing processor, for bench_instrumentation.py.

The same method as the Swarm rows there: an Agents SDK run (triage hands off to billing, which
calls one tool and answers: 3 model responses) with the model answering in-process at zero latency
(a fake AsyncOpenAI whose ``responses.create`` returns prebuilt ``Response`` objects, made by the
scripted LLM's own Responses API code), timed
- uninstrumented: the SDK's tracing on with no processor registered (what an app without
  swarmlens runs);
- instrumented: ``AgentsTracingProcessor`` registered;
- bare SDK: the very spans the processor exported, replayed with nested ``start_as_current_span``.
Per span = (instrumented - uninstrumented) / spans, against bare replay / spans.
"""

from __future__ import annotations

import asyncio

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_trace_processors
from openai.types.responses import Response
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry.instrumentation.openai_swarm.agents_sdk import AgentsTracingProcessor
from swarmlens.scripted_llm.script import Script, response_body, responses_messages

MODEL = "gpt-4o-mini"
SCRIPT = {"model": MODEL, "agents": {
    "triage": {"match": "[agent:triage]", "name": "Triage", "replies": [
        {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}], "usage": {"prompt_tokens": 50,
                                                                                  "completion_tokens": 7}}]},
    "billing": {"match": "[agent:billing]", "name": "Billing", "replies": [
        {"tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-7"}}],
         "usage": {"prompt_tokens": 90, "completion_tokens": 12}},
        {"content": "Your refund of $49 for INV-7 is on its way.", "usage": {"prompt_tokens": 150,
                                                                             "completion_tokens": 18}}]},
}}


class _Responses:
    def __init__(self):
        self.replies: list[Response] = []
        self.next = 0
        self.script = Script(SCRIPT)
        self.recording = True

    async def create(self, **kwargs):
        if self.recording:  # the first run asks the script; every later run replays its answers
            sel = self.script.select({"model": kwargs.get("model"), "messages": responses_messages(kwargs)})
            reply = Response.model_validate(response_body(sel, 0, kwargs))
            self.replies.append(reply)
            return reply
        reply = self.replies[self.next % len(self.replies)]
        self.next += 1
        return reply


class FakeAsyncOpenAI:
    def __init__(self):
        self.responses = _Responses()


def build():
    client = FakeAsyncOpenAI()
    model = OpenAIResponsesModel(model=MODEL, openai_client=client)

    @function_tool
    def lookup_invoice(invoice_id: str) -> str:
        """Find an invoice by id."""
        return f"Invoice {invoice_id}: $49.00, paid"

    billing = Agent(name="Billing", instructions="[agent:billing] refunds", model=model, tools=[lookup_invoice])
    triage = Agent(name="Triage", instructions="[agent:triage] route", model=model, handoffs=[billing])
    return client, triage


def measure(rounds: int, tasks: int, tracer, *, by_hand, hand_plan, start_attributes, span_processor,
            cpu_per_task) -> dict:
    """The result row of the Agents SDK, in the shape of bench_instrumentation's ``results``."""
    client, triage = build()
    loop = asyncio.new_event_loop()

    def one():
        loop.run_until_complete(Runner.run(triage, "I want a refund for my last invoice"))

    # The spans one instrumented run exports, for the bare-SDK replay.
    exporter, starts, tp = InMemorySpanExporter(), start_attributes(), TracerProvider()
    tp.add_span_processor(starts)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    set_trace_processors([AgentsTracingProcessor(tp)])
    one()
    client.responses.recording = False
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    index = {s.context.span_id: i for i, s in enumerate(spans)}
    tree = []
    for s in spans:
        first = starts.at_start[s.context.span_id]
        attrs = dict(s.attributes)
        tree.append((s.name, s.kind, index.get(s.parent.span_id) if s.parent else None,
                     {k: v for k, v in attrs.items() if k in first}, {k: v for k, v in attrs.items() if k not in first}))
    plan = hand_plan(tree)

    run_tp = TracerProvider()
    run_tp.add_span_processor(span_processor())
    processor = AgentsTracingProcessor(run_tp)

    cpu = cpu_per_task
    for fn in (one, lambda: by_hand(tracer, plan)):
        cpu(fn, 20)  # warm up
    plain_t, traced_t, hand_t = [], [], []
    for _ in range(rounds):
        set_trace_processors([])
        plain_t.append(cpu(one, tasks))
        set_trace_processors([processor])
        traced_t.append(cpu(one, tasks))
        set_trace_processors([])
        hand_t.append(cpu(lambda: by_hand(tracer, plan), tasks))
    loop.close()
    plain, traced, hand = min(plain_t), min(traced_t), min(hand_t)
    n = len(tree)
    return {"spans": n, "plain": plain, "traced": traced, "hand": hand, "per_span_instr": (traced - plain) / n,
            "per_span_hand": hand / n, "span_ratio": (traced - plain) / hand, "task_ratio": traced / plain,
            "task_overhead": traced - plain}
