"""Contract-shaped span rows for ``otel_traces``, for tests, seeding and benchmarks.

``task_spans`` builds the spans of one Swarm task as the instrumentation would emit them and a
collector would store them (see the telemetry contract): a root ``invoke_workflow swarm``, one
``invoke_agent`` per stretch of an agent, and inside each stretch its ``chat`` and
``execute_tool`` spans, with the user on every span, tokens at each level, handoffs and errors.
``insert_spans`` writes such rows through clickhouse-connect::

    from swarmlens_testing.spans import Stretch, task_spans, insert_spans
    rows = task_spans(user_id="alice", stretches=[Stretch("Triage", tools=["transfer_to_sales"]),
                                                  Stretch("Sales", chats=[(300, 80), (420, 60)])])
    insert_spans(client, rows, database="otel")

Each row is a dict keyed by the ``otel_traces`` column names (``COLUMNS``), with attribute values
as strings, the way the contrib exporter and rotel store them (a string[] as a JSON array).
Timestamps are timezone-aware UTC datetimes, durations nanoseconds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

# The columns the collectors insert, in rotel's order.
COLUMNS: tuple[str, ...] = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
    "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
    "Links.TraceState", "Links.Attributes",
)

SCOPE_NAME = "opentelemetry.instrumentation.openai_swarm"


@dataclass(frozen=True)
class Stretch:
    """One contiguous stretch in which an agent is active: one ``invoke_agent`` span.

    ``chats`` are the (input_tokens, output_tokens) of each chat completion; ``tools`` the names of
    the ordinary tool calls. When the next stretch is another agent, this stretch ends with a handoff
    tool call ``transfer_to_<next agent>``. ``error_type`` makes the stretch's last chat fail with
    that exception type, and so the stretch and the task; later stretches then never run.
    """

    agent: str
    model: str = "gpt-4o-mini"
    chats: Sequence[tuple[int, int]] = ((120, 30),)
    tools: Sequence[str] = ()
    error_type: str = ""


@dataclass
class _Clock:
    now: datetime
    step: timedelta = field(default=timedelta(milliseconds=5))

    def tick(self, n: int = 1) -> datetime:
        self.now += self.step * n
        return self.now


def _hex(rng: random.Random, nbytes: int) -> str:
    return f"{rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def _ns(start: datetime, end: datetime) -> int:
    delta = end - start
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _span(*, trace_id: str, span_id: str, parent: str, name: str, kind: str, start: datetime, end: datetime,
          service: str, attributes: dict[str, Any], error: str = "", error_message: str = "") -> dict[str, Any]:
    events_ts, events_name, events_attrs = [], [], []
    if error:
        events_ts.append(end)
        events_name.append("exception")
        events_attrs.append({"exception.type": error, "exception.message": error_message or error})
    return {
        "Timestamp": start,
        "TraceId": trace_id,
        "SpanId": span_id,
        "ParentSpanId": parent,
        "TraceState": "",
        "SpanName": name,
        "SpanKind": kind,
        "ServiceName": service,
        "ResourceAttributes": {"service.name": service, "telemetry.sdk.language": "python",
                               "telemetry.sdk.name": "opentelemetry"},
        "ScopeName": SCOPE_NAME,
        "ScopeVersion": "0.1.0",
        "SpanAttributes": {k: _attr(v) for k, v in attributes.items() if v is not None and v != ""},
        "Duration": _ns(start, end),
        "StatusCode": "Error" if error else "Unset",
        "StatusMessage": error_message if error else "",
        "Events.Timestamp": events_ts,
        "Events.Name": events_name,
        "Events.Attributes": events_attrs,
        "Links.TraceId": [],
        "Links.SpanId": [],
        "Links.TraceState": [],
        "Links.Attributes": [],
    }


def _attr(value: Any) -> str:
    """An attribute value as the collectors store it in Map(String, String)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def task_spans(*, user_id: str = "alice", stretches: Sequence[Stretch] = (Stretch("Triage Agent"),),
               start: datetime | None = None, task_id: str | None = None, session_id: str = "",
               conversation_id: str = "", input: str = "Where is my order?", output: str = "It ships today.",
               service_name: str = "swarm-app", rng: random.Random | None = None,
               step: timedelta = timedelta(milliseconds=5)) -> list[dict[str, Any]]:
    """The spans of one task, root first, then each agent stretch followed by its children.

    Totals on the root are the sums of the stretches, and each stretch's tokens the sums of its
    chats, as the contract requires. Ids come from ``rng`` (pass a seeded ``random.Random`` for
    repeatable rows); ``start`` defaults to now (UTC), and each span is ``step`` long.
    """
    if not stretches:
        raise ValueError("a task has at least one agent stretch")
    rng = rng or random.Random()
    trace_id = task_id or _hex(rng, 16)
    start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
    clock = _Clock(start, step)
    root_id = _hex(rng, 8)
    common = {"gen_ai.provider.name": "openai", "enduser.id": user_id, "session.id": session_id}

    children: list[dict[str, Any]] = []
    failed = ""
    for index, st in enumerate(stretches):
        agent_id = _hex(rng, 8)
        agent_start = clock.tick()
        nxt = stretches[index + 1].agent if index + 1 < len(stretches) else None
        handoff_to = nxt if nxt is not None and nxt != st.agent else None
        inner: list[dict[str, Any]] = []
        for ci, (tin, tout) in enumerate(st.chats):
            chat_start = clock.tick()
            error = st.error_type if st.error_type and ci == len(st.chats) - 1 else ""
            inner.append(_span(
                trace_id=trace_id, span_id=_hex(rng, 8), parent=agent_id, name=f"chat {st.model}", kind="Client",
                start=chat_start, end=clock.tick(), service=service_name, error=error,
                error_message=f"{error}: the model call failed" if error else "",
                attributes={**common, "gen_ai.operation.name": "chat", "gen_ai.request.model": st.model,
                            "gen_ai.response.model": f"{st.model}-2024-07-18", "gen_ai.agent.name": st.agent,
                            "gen_ai.response.id": f"chatcmpl-{_hex(rng, 6)}",
                            "gen_ai.response.finish_reasons": None if error else [
                                "tool_calls" if (st.tools or handoff_to) and ci == len(st.chats) - 1 else "stop"],
                            "gen_ai.usage.input_tokens": tin, "gen_ai.usage.output_tokens": tout,
                            "error.type": error or None}))
        if not st.error_type:
            for tool in list(st.tools) + ([f"transfer_to_{handoff_to}"] if handoff_to else []):
                tool_start = clock.tick()
                inner.append(_span(
                    trace_id=trace_id, span_id=_hex(rng, 8), parent=agent_id, name=f"execute_tool {tool}",
                    kind="Internal", start=tool_start, end=clock.tick(), service=service_name,
                    attributes={**common, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                "gen_ai.tool.call.id": f"call_{_hex(rng, 6)}", "gen_ai.tool.type": "function",
                                "gen_ai.agent.name": st.agent,
                                "swarm.handoff.to": handoff_to if tool == f"transfer_to_{handoff_to}" else None}))
        prev = stretches[index - 1].agent if index else None
        children.append(_span(
            trace_id=trace_id, span_id=agent_id, parent=root_id, name=f"invoke_agent {st.agent}", kind="Internal",
            start=agent_start, end=clock.tick(), service=service_name, error=st.error_type,
            error_message=f"{st.error_type}: the model call failed" if st.error_type else "",
            attributes={**common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": st.agent,
                        "gen_ai.request.model": st.model,
                        "gen_ai.usage.input_tokens": sum(c[0] for c in st.chats),
                        "gen_ai.usage.output_tokens": sum(c[1] for c in st.chats),
                        "swarm.agent.turns": len(st.chats),
                        "swarm.handoff.from": prev if prev is not None and prev != st.agent else None,
                        "error.type": st.error_type or None}))
        children.extend(inner)
        if st.error_type:
            failed = st.error_type
            break

    ran = stretches[:index + 1]
    agents: list[str] = []
    for st in ran:
        if st.agent not in agents:
            agents.append(st.agent)
    root = _span(
        trace_id=trace_id, span_id=root_id, parent="", name="invoke_workflow swarm", kind="Internal",
        start=start, end=clock.tick(), service=service_name, error=failed,
        error_message=f"{failed}: the model call failed" if failed else "",
        attributes={**common, "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "swarm",
                    "gen_ai.agent.name": stretches[0].agent, "gen_ai.conversation.id": conversation_id,
                    "swarm.task.input": input, "swarm.task.output": "" if failed else output,
                    "swarm.task.agents": agents, "swarm.task.final_agent": ran[-1].agent,
                    "swarm.task.handoffs": sum(1 for a, b in zip(ran, ran[1:]) if a.agent != b.agent),
                    "swarm.task.turns": sum(len(st.chats) for st in ran),
                    "swarm.task.usage.input_tokens": sum(c[0] for st in ran for c in st.chats),
                    "swarm.task.usage.output_tokens": sum(c[1] for st in ran for c in st.chats),
                    "error.type": failed or None})
    return [root] + children


def rows(spans: Iterable[dict[str, Any]]) -> list[list[Any]]:
    """Span dicts as row lists in ``COLUMNS`` order, as ``client.insert`` takes them."""
    return [[span[c] for c in COLUMNS] for span in spans]


def insert_spans(client, spans: Iterable[dict[str, Any]], database: str = "otel", table: str = "otel_traces",
                 settings: dict[str, Any] | None = None):
    """Inserts span dicts into ``database.table`` as one block (one insert = one collector batch)."""
    return client.insert(table, rows(spans), column_names=list(COLUMNS), database=database, settings=settings)


def foreign_spans(spans: Sequence[dict[str, Any]], *, root_name: str = "invoke_workflow support desk",
                  scope: str = "opentelemetry.util.genai.handler") -> list[dict[str, Any]]:
    """The spans of ``task_spans`` as another semconv-following instrumentation writes them: no
    ``swarm.*`` attributes anywhere, no usage sums on the root or the agent spans, the user only on
    the chat spans (where an identity processor put it), the root named ``root_name``."""
    out = []
    for span in spans:
        s = dict(span, ScopeName=scope, SpanAttributes={k: v for k, v in span["SpanAttributes"].items()
                                                         if not k.startswith("swarm.")})
        attrs = s["SpanAttributes"]
        op = attrs.get("gen_ai.operation.name")
        if op in ("invoke_workflow", "invoke_agent"):
            for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "enduser.id", "session.id"):
                attrs.pop(key, None)
        if not s["ParentSpanId"]:
            s["SpanName"] = root_name
            attrs["gen_ai.workflow.name"] = root_name.split(" ", 1)[1]
        out.append(s)
    return out
