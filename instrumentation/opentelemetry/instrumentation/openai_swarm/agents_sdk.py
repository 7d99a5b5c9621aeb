"""OpenAI Agents SDK apps as tasks: a tracing processor of the Agents SDK that emits the spans of
the telemetry contract, exactly as the Swarm instrumentation does.

One Agents SDK trace (one ``Runner.run()`` / ``run_sync()`` / ``run_streamed()``, or the
``agents.trace()`` block around several) is one task and one OpenTelemetry trace::

    invoke_workflow {workflow name}    root: task input/output, agents, handoffs, turns, token totals
    ├── invoke_agent Triage            one per agent span: that stretch's tokens and turns
    │   ├── chat gpt-4o                one per model response: model, response id, exact usage
    │   └── execute_tool transfer_to_billing   a handoff (swarm.handoff.to) or a function tool
    └── invoke_agent Billing           swarm.handoff.from = "Triage"

Usage::

    from opentelemetry.instrumentation.openai_swarm import swarm_user
    from opentelemetry.instrumentation.openai_swarm.agents_sdk import instrument_agents

    instrument_agents()                        # tracer_provider=..., capture_content=..., keep_default=False
    with swarm_user("u-42", session_id="s-7"):
        Runner.run_sync(triage, "Where is my refund?")

The Agents SDK reports every model response with its usage (``ResponseSpanData`` for the
Responses API, ``GenerationSpanData`` for chat completions), so the figures are exact; handoffs are
spans of their own there, so they are recorded without guessing. The user, session and
conversation come from ``swarm_user()`` or the baggage entries ``enduser.id`` / ``session.id``
around the run (the conversation defaults to the trace's ``group_id``).

Settings are those of the Swarm instrumentation (``OTEL_INSTRUMENTATION_SWARM_CAPTURE_CONTENT``,
``..._MAX_ATTRIBUTE_LENGTH``, ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), each
overridable by the keyword of ``instrument_agents()``.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from agents.tracing import Span, Trace, TracingProcessor, add_trace_processor, set_trace_processors
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    HandoffSpanData,
    ResponseSpanData,
)

try:  # openai-agents >= 0.24: a span per Runner run (task) and per loop turn
    from agents.tracing.span_data import TaskSpanData, TurnSpanData
except ImportError:  # older releases have neither
    TaskSpanData = TurnSpanData = None  # type: ignore[assignment,misc]
try:
    from agents.tracing.span_data import GuardrailSpanData
except ImportError:  # pragma: no cover - every supported release has it
    GuardrailSpanData = None  # type: ignore[assignment,misc]
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, Status, StatusCode

from . import utils as u
from .version import __version__

SCOPE = "opentelemetry.instrumentation.openai_swarm.agents_sdk"
_OTHER_ERROR = "_OTHER"  # the conventions' error.type when no type is known
SWARM_GUARDRAIL_NAME = "swarm.guardrail.name"
# On another instrumentation's span made inside an Agents SDK task but outside its trace (the SDK does
# not carry the OpenTelemetry context into its model calls): the task it belongs to.
SWARM_TASK_ID = "swarm.task.id"
SWARM_GUARDRAIL_TRIGGERED = "swarm.guardrail.triggered"


# The processor made last, for task_attributes_of_current_span().
_active: list["AgentsTracingProcessor"] = []


def _tool_name_for(agent_name: str) -> str:
    """The name the Agents SDK gives a handoff tool (``Handoff.default_tool_name``)."""
    try:
        from agents.util._transforms import transform_string_function_style

        return transform_string_function_style(f"transfer_to_{agent_name}")
    except Exception:  # pragma: no cover - a different SDK layout
        return f"transfer_to_{agent_name}".replace(" ", "_").lower()


class _Run:
    """One Agents SDK trace: the root span and the running sums."""

    def __init__(self, root: Any, ctx: otel_context.Context, identity: dict, limit: int):
        self.root = root
        self.ctx = ctx
        self.identity = identity
        self.limit = limit
        self.agents: list[str] = []
        self.start_agent: Optional[str] = None
        self.final_agent: Optional[str] = None
        self.handoffs = 0
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read: Optional[int] = None
        self.reasoning: Optional[int] = None
        self.input_text: Optional[str] = None
        self.output_text: Optional[str] = None
        self.pending_from: Optional[str] = None
        self.spans: dict[str, "_Node"] = {}  # Agents SDK span id -> our span

    def open_agent(self, name: str) -> Optional["_Node"]:
        """The agent span of that name still open, the latest started (a turn span that is not inside
        its agent span still adds to it)."""
        for node in reversed(list(self.spans.values())):
            if node.owner is node and node.agent == name:
                return node
        return None


class _Node:
    """One Agents SDK span. ``span`` is None for a span of the SDK that has no span of the contract
    (task, turn, custom, and any type this module does not know): its children then hang on its
    parent, so the chain from a model call up to its agent is never cut. ``owner`` is the agent
    node whose sums the model calls below this span add to."""

    __slots__ = ("span", "ctx", "agent", "owner", "model", "turns", "input_tokens", "output_tokens", "cache_read",
                 "reasoning")

    def __init__(self, span: Any, ctx: otel_context.Context, agent: Optional[str],
                 owner: Optional["_Node"] = None):
        self.span = span
        self.ctx = ctx
        self.agent = agent
        self.owner = owner
        self.model: Optional[str] = None  # of an agent node: the model of its first response
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read: Optional[int] = None
        self.reasoning: Optional[int] = None


def _add(a: Optional[int], b: Optional[int]) -> Optional[int]:
    if b is None:
        return a
    return (a or 0) + b


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _last_user_text(items: Any) -> Optional[str]:
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if _get(item, "role") == "user":
            content = _get(item, "content")
            if isinstance(content, list):
                content = "".join(str(_get(p, "text") or "") for p in content)
            return str(content or "")
    return None


class AgentsTracingProcessor(TracingProcessor):
    """An Agents SDK ``TracingProcessor`` that writes the contract's spans through OpenTelemetry."""

    def __init__(self, tracer_provider: Any = None, **options: Any):
        self.config = u.load_config(options)
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        _active[:] = [self]  # the one the identity processor asks (the SDK runs one set of processors)

    # -- traces ---------------------------------------------------------------------------------
    def on_trace_start(self, agents_trace: Trace) -> None:
        try:
            ambient = otel_context.get_current()
            user = u.resolve_user(ambient, None, self.config)
            conversation = user.conversation_id or _get(agents_trace, "group_id")
            identity = u.identity_attributes(u.UserInfo(user.user_id, user.session_id,
                                                        u.clean_str(conversation, self.config.max_attribute_length)
                                                        if conversation else None))
            name = u.clean_str(agents_trace.name or "Agent workflow", self.config.max_attribute_length)
            attrs = {u.GEN_AI_OPERATION_NAME: "invoke_workflow", **identity, u.GEN_AI_WORKFLOW_NAME: name}
            current = trace.get_current_span(ambient).get_span_context()
            links = [Link(current)] if current.is_valid else None
            parent = trace.set_span_in_context(INVALID_SPAN, ambient)  # one task, one trace
            root = self.tracer.start_span("invoke_workflow " + name, context=parent, kind=SpanKind.INTERNAL,
                                          attributes=attrs, links=links)
            run = _Run(root, trace.set_span_in_context(root, parent), identity, self.config.max_attribute_length)
            with self._lock:
                self._runs[agents_trace.trace_id] = run
        except Exception:
            u.logger.warning("Agents SDK tracing: starting a task span failed", exc_info=True)

    def on_trace_end(self, agents_trace: Trace) -> None:
        with self._lock:
            run = self._runs.pop(agents_trace.trace_id, None)
        if run is None:
            return
        try:
            for node in list(run.spans.values()):  # spans the SDK never ended
                if node.span is not None:
                    node.span.end()
            attrs: dict[str, Any] = {
                u.SWARM_TASK_AGENTS: list(run.agents),
                u.SWARM_TASK_HANDOFFS: run.handoffs,
                u.SWARM_TASK_TURNS: run.turns,
                u.SWARM_TASK_USAGE_INPUT_TOKENS: run.input_tokens,
                u.SWARM_TASK_USAGE_OUTPUT_TOKENS: run.output_tokens,
            }
            if run.cache_read is not None:
                attrs[u.SWARM_TASK_USAGE_CACHE_READ_INPUT_TOKENS] = run.cache_read
            if run.reasoning is not None:
                attrs[u.SWARM_TASK_USAGE_REASONING_OUTPUT_TOKENS] = run.reasoning
            if run.start_agent:
                attrs[u.GEN_AI_AGENT_NAME] = run.start_agent
            final = run.final_agent or (run.agents[-1] if run.agents else None)
            if final:
                attrs[u.SWARM_TASK_FINAL_AGENT] = final
            if self.config.capture_content:
                if run.input_text:
                    attrs[u.SWARM_TASK_INPUT] = u.clean_str(run.input_text, run.limit)
                if run.output_text:
                    attrs[u.SWARM_TASK_OUTPUT] = u.clean_str(run.output_text, run.limit)
            run.root.set_attributes(attrs)
            run.root.end()
        except Exception:
            u.logger.warning("Agents SDK tracing: ending a task span failed", exc_info=True)

    # -- spans ----------------------------------------------------------------------------------
    def _parent(self, run: _Run, span: Span[Any]) -> tuple[otel_context.Context, Optional[_Node]]:
        node = run.spans.get(span.parent_id) if span.parent_id else None
        return (node.ctx, node) if node is not None else (run.ctx, None)

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            run = self._runs.get(span.trace_id)
        if run is None:
            return
        try:
            data = span.span_data
            ctx, parent = self._parent(run, span)
            limit = run.limit
            if isinstance(data, AgentSpanData):
                name = u.clean_str(data.name, limit)
                attrs = {u.GEN_AI_OPERATION_NAME: "invoke_agent", **run.identity, u.GEN_AI_AGENT_NAME: name}
                if run.pending_from is not None and run.pending_from != name:
                    attrs[u.SWARM_HANDOFF_FROM] = run.pending_from
                run.pending_from = None
                if run.start_agent is None:
                    run.start_agent = name
                if name not in run.agents:
                    run.agents.append(name)
                run.final_agent = name
                otel_span = self.tracer.start_span("invoke_agent " + name, context=ctx, kind=SpanKind.INTERNAL,
                                                   attributes=attrs)
                node = _Node(otel_span, trace.set_span_in_context(otel_span, ctx), name)
                node.owner = node
                run.spans[span.span_id] = node
                return
            elif isinstance(data, (ResponseSpanData, GenerationSpanData)):
                agent = parent.agent if parent is not None else None
                attrs = {u.GEN_AI_OPERATION_NAME: "chat", **run.identity}
                if agent:
                    attrs[u.GEN_AI_AGENT_NAME] = agent
                otel_span = self.tracer.start_span("chat", context=ctx, kind=SpanKind.CLIENT, attributes=attrs)
            elif isinstance(data, (FunctionSpanData, HandoffSpanData)):
                agent = parent.agent if parent is not None else None
                tool = data.name if isinstance(data, FunctionSpanData) else "handoff"
                attrs = {u.GEN_AI_OPERATION_NAME: "execute_tool", **run.identity,
                         u.GEN_AI_TOOL_NAME: u.clean_str(tool, limit), u.GEN_AI_TOOL_TYPE: "function"}
                if agent:
                    attrs[u.GEN_AI_AGENT_NAME] = agent
                otel_span = self.tracer.start_span("execute_tool " + attrs[u.GEN_AI_TOOL_NAME], context=ctx,
                                                   kind=SpanKind.INTERNAL, attributes=attrs)
            elif GuardrailSpanData is not None and isinstance(data, GuardrailSpanData):
                agent = parent.agent if parent is not None else None
                name = u.clean_str(data.name or "guardrail", limit)
                attrs = {**run.identity, SWARM_GUARDRAIL_NAME: name}
                if agent:
                    attrs[u.GEN_AI_AGENT_NAME] = agent
                otel_span = self.tracer.start_span("guardrail " + name, context=ctx, kind=SpanKind.INTERNAL,
                                                   attributes=attrs)
            else:
                # Task and turn spans (openai-agents >= 0.24), custom, speech, MCP listings and types
                # not known here: no span of the contract, but a link in the chain, so that what runs
                # inside them keeps its agent and parent.
                agent = parent.agent if parent is not None else None
                owner = parent.owner if parent is not None else None
                turn_agent = getattr(data, "agent_name", None) if TurnSpanData is not None and isinstance(
                    data, TurnSpanData) else None
                if turn_agent and owner is None:
                    owner = run.open_agent(turn_agent)
                    agent = turn_agent
                run.spans[span.span_id] = _Node(None, ctx, agent, owner)
                return
            run.spans[span.span_id] = _Node(otel_span, trace.set_span_in_context(otel_span, ctx), agent,
                                            parent.owner if parent is not None else None)
        except Exception:
            u.logger.warning("Agents SDK tracing: starting a span failed", exc_info=True)

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            run = self._runs.get(span.trace_id)
        if run is None:
            return
        node = run.spans.pop(span.span_id, None)
        if node is None or node.span is None:
            return
        try:
            data = span.span_data
            otel_span = node.span
            _, parent = self._parent(run, span)
            if isinstance(data, AgentSpanData):
                attrs = {u.GEN_AI_USAGE_INPUT_TOKENS: node.input_tokens, u.GEN_AI_USAGE_OUTPUT_TOKENS: node.output_tokens,
                         u.SWARM_AGENT_TURNS: node.turns}
                if node.cache_read is not None:
                    attrs[u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = node.cache_read
                if node.reasoning is not None:
                    attrs[u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = node.reasoning
                if node.model:  # the SDK's agent span has no model; its responses tell it
                    attrs[u.GEN_AI_REQUEST_MODEL] = node.model
                otel_span.set_attributes(attrs)
            elif isinstance(data, (ResponseSpanData, GenerationSpanData)):
                self._chat_done(run, node, node.owner, data)
            elif GuardrailSpanData is not None and isinstance(data, GuardrailSpanData):
                otel_span.set_attribute(SWARM_GUARDRAIL_TRIGGERED, bool(data.triggered))
            elif isinstance(data, HandoffSpanData):
                if data.to_agent:
                    tool = u.clean_str(_tool_name_for(data.to_agent), run.limit)
                    otel_span.update_name("execute_tool " + tool)
                    otel_span.set_attributes({u.GEN_AI_TOOL_NAME: tool,
                                              u.SWARM_HANDOFF_TO: u.clean_str(data.to_agent, run.limit)})
                    run.handoffs += 1
                    run.pending_from = node.agent or data.from_agent
            elif isinstance(data, FunctionSpanData) and self.config.capture_messages:
                if data.input:
                    otel_span.set_attribute(u.GEN_AI_TOOL_CALL_ARGUMENTS, u.clean_str(data.input, run.limit))
                if data.output is not None:
                    otel_span.set_attribute(u.GEN_AI_TOOL_CALL_RESULT, u.clean_str(data.output, run.limit))
            error = span.error
            if error:
                message = str(_get(error, "message") or "error")
                otel_span.set_attribute(u.ERROR_TYPE, _OTHER_ERROR)
                otel_span.set_status(Status(StatusCode.ERROR, message[:1024]))
                if isinstance(data, AgentSpanData) or parent is None or parent.span is None and parent.owner is None:
                    run.root.set_status(Status(StatusCode.ERROR, message[:1024]))
                    run.root.set_attribute(u.ERROR_TYPE, _OTHER_ERROR)
            otel_span.end()
        except Exception:
            u.logger.warning("Agents SDK tracing: ending a span failed", exc_info=True)
            node.span.end()

    def _chat_done(self, run: _Run, node: _Node, parent: Optional[_Node], data: Any) -> None:
        attrs: dict[str, Any] = {}
        if isinstance(data, ResponseSpanData):
            response = data.response
            usage = _get(response, "usage")
            input_tokens = _get(usage, "input_tokens")
            output_tokens = _get(usage, "output_tokens")
            cached = _get(_get(usage, "input_tokens_details"), "cached_tokens")
            reasoning = _get(_get(usage, "output_tokens_details"), "reasoning_tokens")
            model = _get(response, "model")
            if _get(response, "id"):
                attrs[u.GEN_AI_RESPONSE_ID] = u.clean_str(response.id, run.limit)
            status = _get(response, "status")
            if status:
                attrs[u.GEN_AI_RESPONSE_FINISH_REASONS] = [str(status)]
            if run.input_text is None:
                run.input_text = _last_user_text(data.input)
            text = _get(response, "output_text") if response is not None else None
            if text:
                run.output_text = text
        else:  # GenerationSpanData: a chat completions model
            usage = data.usage or {}
            input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
            cached = reasoning = None
            model = data.model
            if run.input_text is None:
                run.input_text = _last_user_text(list(data.input or []))
            for message in data.output or ():
                if _get(message, "content"):
                    run.output_text = str(_get(message, "content"))
        if model:
            model = u.clean_str(model, run.limit)
            node.span.update_name("chat " + model)
            attrs[u.GEN_AI_REQUEST_MODEL] = model
            attrs[u.GEN_AI_RESPONSE_MODEL] = model
        input_tokens = int(input_tokens or 0)
        output_tokens = int(output_tokens or 0)
        attrs[u.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        attrs[u.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        cached = int(cached) if cached is not None else None
        reasoning = int(reasoning) if reasoning is not None else None
        if cached is not None:
            attrs[u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        if reasoning is not None:
            attrs[u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
        if usage is None or (not input_tokens and not output_tokens):
            attrs[u.SWARM_USAGE_ESTIMATED] = True  # the SDK reported no usage for this response
        node.span.set_attributes(attrs)
        run.turns += 1
        run.input_tokens += input_tokens
        run.output_tokens += output_tokens
        run.cache_read = _add(run.cache_read, cached)
        run.reasoning = _add(run.reasoning, reasoning)
        if parent is not None:
            if model and parent.model is None:
                parent.model = model
            parent.turns += 1
            parent.input_tokens += input_tokens
            parent.output_tokens += output_tokens
            parent.cache_read = _add(parent.cache_read, cached)
            parent.reasoning = _add(parent.reasoning, reasoning)

    def shutdown(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            for node in run.spans.values():
                if node.span is not None:
                    node.span.end()
            run.root.end()

    def force_flush(self) -> None:
        return None


def task_attributes_of_current_span() -> dict[str, Any]:
    """The identity, agent and task id of the Agents SDK span current in this context (the model call in
    flight, say), for the identity processor to put on another instrumentation's span started there:
    that span is the root of a trace of its own, and these tell whose call it is. Empty outside a task."""
    try:
        from agents.tracing import get_current_span, get_current_trace

        current_trace = get_current_trace()
        if current_trace is None:
            return {}
        current = get_current_span()
        for processor in list(_active):
            run = processor._runs.get(current_trace.trace_id)
            if run is None:
                continue
            node = run.spans.get(current.span_id) if current is not None else None
            attrs = dict(run.identity)
            if node is not None and node.agent:
                attrs[u.GEN_AI_AGENT_NAME] = node.agent
            root = run.root.get_span_context()
            if root.is_valid:
                attrs[SWARM_TASK_ID] = format(root.trace_id, "032x")
            return attrs
    except Exception:  # never break the span or the application
        u.logger.warning("Agents SDK tracing: reading the current task failed", exc_info=True)
    return {}


def instrument_agents(tracer_provider: Any = None, *, keep_default: bool = False,
                      **options: Any) -> AgentsTracingProcessor:
    """Registers an ``AgentsTracingProcessor`` with the Agents SDK and returns it.

    By default it replaces the SDK's own processors (whose exporter sends traces to OpenAI's
    platform and needs an OpenAI API key); ``keep_default=True`` adds it beside them.
    """
    processor = AgentsTracingProcessor(tracer_provider, **options)
    try:  # the user and the task's agent on other instrumentations' spans of its model calls
        from . import _add_identity_processor

        _add_identity_processor(tracer_provider if tracer_provider is not None else trace.get_tracer_provider(),
                                processor.config)
    except Exception:
        u.logger.warning("Agents SDK tracing: adding the identity processor failed", exc_info=True)
    if keep_default:
        add_trace_processor(processor)
    else:
        set_trace_processors([processor])
    return processor
