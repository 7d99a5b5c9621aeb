"""The per-task state: ``_Task`` (one ``Swarm.run`` / ``run_and_stream`` call: the root span, the
identity of the user, the running sums, the agents and handoffs) and ``_Stretch`` (one contiguous
stretch of an active agent: one ``invoke_agent`` span and its sums), the registry of the stretches
being recorded (``live_stretch``, read by ``identity``) and ``_current_task``, how a wrapper finds the
task it runs in.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link

from . import utils as u
from .common import (
    _AGENT,
    _INTERNAL,
    _OP,
    _REQUEST_MODEL,
    _SUPPRESS_KEY,
    _SUPPRESS_KEY_PLAIN,
    _TASK_KEY,
    _clean_str,
    _get_current,
    _record_error,
    _set_span,
    _set_value,
)

if TYPE_CHECKING:
    from .chat import _Chat
    from .telemetry import Telemetry

# The invoke_agent spans being recorded, by span id. A span another instrumentation starts under one
# of them in a context that lost ours still belongs to that agent's task (identity.py): logfire, for
# one, records a streamed completion's usage when the stream ends, in a context it rebuilds from the
# request's traceparent, which keeps the parent span and nothing else of the context.
# A plain dict of weak references: WeakValueDictionary's item set and pop run several Python calls
# each, twice per agent stretch; weakref.ref is one C call, and its callback drops the entry of a
# stretch that was freed without end().
_LIVE_STRETCHES: "dict[int, weakref.ReferenceType]" = {}
_weakref = weakref.ref


class _Stretch:
    """One contiguous stretch of an active agent: one invoke_agent span."""

    __slots__ = ("span", "agent", "name", "ctx", "chat_attrs", "turns", "input_tokens", "output_tokens",
                 "cache_read_tokens", "reasoning_tokens", "estimated", "failed", "identity", "span_id",
                 "__weakref__")

    def __init__(self, task: "_Task", agent: Any, model: Any, handoff_from: Optional[str]):
        tel = task.tel
        self.agent = agent
        self.name = name = tel.name_of(agent)
        identity = task.identity
        attrs = {_OP: "invoke_agent", **identity, _AGENT: name}
        if model:
            attrs[_REQUEST_MODEL] = model if type(model) is str and len(model) <= tel.limit and model.isascii() \
                else _clean_str(model, tel.limit)
        if handoff_from is not None:
            attrs[u.SWARM_HANDOFF_FROM] = handoff_from
        self.span = span = tel.start_span("invoke_agent " + name, context=task.ctx, kind=_INTERNAL, attributes=attrs)
        self.ctx = _set_span(span, task.ctx)
        self.identity = identity
        self.span_id = None
        if span.is_recording():
            self.span_id = span_id = span.get_span_context().span_id
            _LIVE_STRETCHES[span_id] = _weakref(self, lambda ref, key=span_id: _drop_stretch(key, ref))
        self.chat_attrs = {_OP: "chat", **identity, _AGENT: name}  # what every chat span of the stretch starts with
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens: Optional[int] = None  # None until the API reports the detail
        self.reasoning_tokens: Optional[int] = None
        self.estimated = False
        self.failed = False

    def fail(self, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            _record_error(self.span, exc)

    def end(self) -> None:
        span = self.span
        if span.is_recording():
            attrs = {
                u.GEN_AI_USAGE_INPUT_TOKENS: self.input_tokens,
                u.GEN_AI_USAGE_OUTPUT_TOKENS: self.output_tokens,
                u.SWARM_AGENT_TURNS: self.turns,
            }
            if self.cache_read_tokens is not None:
                attrs[u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
            if self.reasoning_tokens is not None:
                attrs[u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
            if self.estimated:
                attrs[u.SWARM_USAGE_ESTIMATED] = True
            span.set_attributes(attrs)
        if self.span_id is not None:
            _LIVE_STRETCHES.pop(self.span_id, None)
        span.end()


def _drop_stretch(key: int, ref: Any) -> None:
    if _LIVE_STRETCHES.get(key) is ref:
        _LIVE_STRETCHES.pop(key, None)


def live_stretch(ctx: otel_context.Context) -> Optional[_Stretch]:
    """The agent stretch whose invoke_agent span is the current span of ``ctx`` while it is recorded."""
    if not _LIVE_STRETCHES:  # no Swarm task running (an Agents SDK app): nothing to look up
        return None
    parent = trace.get_current_span(ctx).get_span_context()
    ref = _LIVE_STRETCHES.get(parent.span_id) if parent.is_valid else None
    stretch = ref() if ref is not None else None
    if stretch is not None and stretch.span.get_span_context().trace_id == parent.trace_id:
        return stretch
    return None


class _Task:
    """One Swarm.run / run_and_stream call: the root span and the running sums."""

    __slots__ = ("tel", "span", "ctx", "identity", "parent", "recording", "start_agent", "agents", "handoffs",
                 "turns", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "estimated",
                 "stretch", "pending_from", "open_chat",
                 "pending_chat", "response", "finished", "failed")

    def __init__(self, tel: Telemetry, agent: Any, messages: Any, context_variables: Any,
                 ambient: Optional[otel_context.Context] = None):
        self.tel = tel
        tel.check_provider()
        if ambient is None:
            ambient = _get_current()
        self.parent: Optional[_Task] = ambient.get(_TASK_KEY)
        user = u.resolve_user(ambient, context_variables, tel.config)
        self.identity = identity = u.identity_attributes(user)
        self.start_agent = tel.name_of(agent) if agent is not None else None
        attrs: dict[str, Any] = {_OP: "invoke_workflow", **identity, u.GEN_AI_WORKFLOW_NAME: u.WORKFLOW_NAME}
        if self.start_agent is not None:
            attrs[_AGENT] = self.start_agent
        if user.conversation_id is not None:
            attrs[u.GEN_AI_CONVERSATION_ID] = user.conversation_id
        if tel.capture_content:
            text = u.last_user_message(messages)
            if text:
                attrs[u.SWARM_TASK_INPUT] = _clean_str(text, tel.limit)
        links = None
        if self.parent is None:
            # One task is one trace (the trace id is the task id): a task started inside some
            # other span (an HTTP request, say) starts a new trace and links back to it.
            current = trace.get_current_span(ambient).get_span_context()
            if current.is_valid:
                links = [Link(current)]
            parent_ctx = _set_span(INVALID_SPAN, ambient)
        else:
            parent_ctx = ambient  # a Swarm run inside a tool of another task stays in that trace
        self.span = span = tel.start_span("invoke_workflow swarm", context=parent_ctx, kind=_INTERNAL,
                                          attributes=attrs, links=links)
        self.ctx = _set_value(_TASK_KEY, self, _set_span(span, parent_ctx))
        self.recording = span.is_recording()
        self.agents: list[str] = []
        self.handoffs = 0
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens: Optional[int] = None
        self.reasoning_tokens: Optional[int] = None
        self.estimated = False
        self.stretch: Optional[_Stretch] = None
        self.pending_from: Optional[str] = None
        self.open_chat: Optional[_Chat] = None
        self.pending_chat: Optional[_Chat] = None  # prepared by get_chat_completion, taken by the view's create
        self.response: Any = None
        self.finished = False
        self.failed = False

    # -- agents ---------------------------------------------------------------------------
    def _note_agent(self, name: str) -> None:
        if name not in self.agents:
            self.agents.append(name)

    def handoff(self, new_agent: Any) -> None:
        old = self.stretch
        if old is not None:
            old.end()
        self.stretch = None
        self.handoffs += 1
        self.pending_from = old.name if old is not None else self.pending_from
        self._note_agent(self.tel.name_of(new_agent))

    def stretch_for(self, agent: Any, model: Any) -> _Stretch:
        st = self.stretch
        if st is not None:
            if st.agent is agent:
                return st
            # The active agent changed without a handoff seen by handle_tool_calls (a subclass
            # may switch agents itself): Swarm only switches on handoffs, so count it as one.
            self.handoff(agent)
        st = self.stretch = _Stretch(self, agent, model, self.pending_from)
        self.pending_from = None
        self._note_agent(st.name)
        return st

    # -- end --------------------------------------------------------------------------------
    def finish(self, error: Optional[BaseException] = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.pending_chat = None
        chat = self.open_chat
        if chat is not None:
            chat.abandon()
        st = self.stretch
        if st is not None:
            if error is not None:
                st.fail(error)
            st.end()
            self.stretch = None
        span = self.span
        if self.recording:
            tel = self.tel
            attrs: dict[str, Any] = {
                u.SWARM_TASK_AGENTS: list(self.agents),
                u.SWARM_TASK_HANDOFFS: self.handoffs,
                u.SWARM_TASK_TURNS: self.turns,
                u.SWARM_TASK_USAGE_INPUT_TOKENS: self.input_tokens,
                u.SWARM_TASK_USAGE_OUTPUT_TOKENS: self.output_tokens,
            }
            if self.cache_read_tokens is not None:
                attrs[u.SWARM_TASK_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
            if self.reasoning_tokens is not None:
                attrs[u.SWARM_TASK_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
            if self.estimated:
                attrs[u.SWARM_USAGE_ESTIMATED] = True
            response = self.response
            final_agent = getattr(response, "agent", None) if response is not None else None
            if final_agent is not None:
                attrs[u.SWARM_TASK_FINAL_AGENT] = tel.name_of(final_agent)
            elif self.agents:
                attrs[u.SWARM_TASK_FINAL_AGENT] = self.agents[-1]
            elif self.start_agent is not None:
                attrs[u.SWARM_TASK_FINAL_AGENT] = self.start_agent
            if tel.capture_content and response is not None:
                text = u.final_assistant_message(getattr(response, "messages", None))
                if text:
                    attrs[u.SWARM_TASK_OUTPUT] = _clean_str(text, tel.limit)
            span.set_attributes(attrs)
            if error is not None:
                _record_error(span, error)
        span.end()
        # The context holds the task and the task its context: break the cycle so the task, its
        # spans and their attributes are freed now, not by a later garbage collection.
        self.ctx = None
        parent = self.parent
        if parent is not None and not parent.finished:
            # A nested run's tokens belong to the enclosing task's totals too (its root is not a task
            # of its own in reports); per-agent figures come from its own invoke_agent spans.
            parent.input_tokens += self.input_tokens
            parent.output_tokens += self.output_tokens
            if self.cache_read_tokens is not None:
                parent.cache_read_tokens = (parent.cache_read_tokens or 0) + self.cache_read_tokens
            if self.reasoning_tokens is not None:
                parent.reasoning_tokens = (parent.reasoning_tokens or 0) + self.reasoning_tokens
            parent.estimated = parent.estimated or self.estimated



def _current_task() -> Optional[_Task]:
    ctx = _get_current()
    task = ctx.get(_TASK_KEY)
    if task is None or task.finished or not task.recording or ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_KEY_PLAIN):
        return None
    return task
