"""Wrapper factories, one per wrapped Swarm method, and the per-task state they share.

How a task becomes a trace
--------------------------
``Swarm.run`` / ``Swarm.run_and_stream`` start the root span and put a ``_Task`` in the
OpenTelemetry context. Swarm's loop then calls ``get_chat_completion`` and
``handle_tool_calls``; their wrappers find the task in the context, open an ``invoke_agent``
span when a new agent becomes active (closed at the handoff, or when the task ends), a ``chat``
span per completion and an ``execute_tool`` span per tool call.

Rules every wrapper follows
---------------------------
- The wrapped method is called exactly once, with the caller's arguments (the only change:
  ``stream_options.include_usage`` on streamed requests that had no ``stream_options``), and
  its result or exception is passed on unchanged. Everything the instrumentation does itself
  runs under try/except: an internal failure is logged, never raised.
- A span is made current only around synchronous calls, never across a ``yield``: streaming
  attaches the task context for each step of the generator and detaches it before yielding,
  so closing a generator early cannot produce "Failed to detach context" errors.
- A span is made current only where something may start a child span under it: the root
  around Swarm's loop, the ``invoke_agent`` span around ``get_chat_completion`` (agent
  instructions callables, the official OpenAI instrumentation), the ``chat`` span around the
  HTTP request (HTTP client instrumentations) and each ``execute_tool`` span around its tool.
  Every span is started with an explicit parent context, so nothing else needs attaching.

Cost
----
This code runs several times per completion, so it is written for the interpreter: the
attributes known at start go into ``start_span(attributes=...)`` in one dict (the SDK's
per-call ``set_attribute`` costs more), the rest in one ``set_attributes`` before the end;
settings are read once per ``instrument()``; the client views Swarm's ``get_chat_completion``
runs against are built once per Swarm instance (and client), not per call; streamed chunks
pass through a plain generator. ``bench/bench_instrumentation.py`` measures the result.
"""

from __future__ import annotations

import contextvars
import json
import time
import types
import weakref
from typing import Any, Callable, Optional

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, Status, StatusCode

from . import utils as u
from .utils import logger

_TASK_KEY = otel_context.create_key("openai_swarm.task")
# Set while a chat completion request of a task is in flight, before this package has started a span
# for it: a GenAI chat span another instrumentation starts under it makes ours a duplicate.
_CHAT_KEY = otel_context.create_key("openai_swarm.chat")
# The invoke_agent spans being recorded, by span id. A span another instrumentation starts under one
# of them in a context that lost ours still belongs to that agent's task (identity.py): logfire, for
# one, records a streamed completion's usage when the stream ends, in a context it rebuilds from the
# request's traceparent, which keeps the parent span and nothing else of the context.
# A plain dict of weak references: WeakValueDictionary's item set and pop run several Python calls
# each, twice per agent stretch; weakref.ref is one C call, and its callback drops the entry of a
# stretch that was freed without end().
_LIVE_STRETCHES: "dict[int, weakref.ReferenceType]" = {}
_weakref = weakref.ref

_ProxyBase = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

try:  # the keys suppress_instrumentation() sets; is_instrumentation_enabled() reads the same two
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
except ImportError:  # pragma: no cover - older API
    _SUPPRESS_KEY = "suppress_instrumentation"
_SUPPRESS_KEY_PLAIN = "suppress_instrumentation"
_CTX_VARS = "context_variables"  # swarm.core.__CTX_VARS_NAME__
_UNSET = object()



def _context_ops() -> tuple:
    """get_current / attach / detach of the OpenTelemetry context.

    With the default runtime context (a ContextVar; the only one the API ships) these are the
    ContextVar's own get / set / reset: the API functions add two Python calls each, and the
    wrappers use them several times per completion and per streamed step. Every attach here
    is detached in the same frame and the same contextvars.Context, so ``reset`` cannot fail
    the way ``detach`` guards against. Any other runtime context goes through the API.
    """
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        cv = getattr(_RUNTIME_CONTEXT, "_current_context", None)
        if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext and isinstance(cv, contextvars.ContextVar):
            return cv.get, cv.set, cv.reset
    except Exception:  # pragma: no cover - a different API version
        pass
    return otel_context.get_current, otel_context.attach, otel_context.detach


# Hot-path aliases (module globals are one dict lookup; attribute chains are several).
_get_current, _attach, _detach = _context_ops()
_set_value = otel_context.set_value
_set_span = trace.set_span_in_context
_get_tracer_provider = trace.get_tracer_provider
_clean_str = u.clean_str
_MethodType = types.MethodType
_GeneratorType = types.GeneratorType
_INTERNAL = SpanKind.INTERNAL
_CLIENT = SpanKind.CLIENT

_OP = u.GEN_AI_OPERATION_NAME
_AGENT = u.GEN_AI_AGENT_NAME
_REQUEST_MODEL = u.GEN_AI_REQUEST_MODEL
_USAGE_INPUT = u.GEN_AI_USAGE_INPUT_TOKENS
_USAGE_OUTPUT = u.GEN_AI_USAGE_OUTPUT_TOKENS
_USAGE_CACHE_READ = u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
_USAGE_REASONING = u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
_RESPONSE_MODEL = u.GEN_AI_RESPONSE_MODEL
_RESPONSE_ID = u.GEN_AI_RESPONSE_ID
_FINISH_REASONS = u.GEN_AI_RESPONSE_FINISH_REASONS

_OWN_SCOPE = "opentelemetry.instrumentation.openai_swarm"
# The operations of the GenAI conventions that are one model call: a span of another instrumentation
# with one of these, started while our chat request is in flight, is the chat span of that request.
_MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_time_ns = time.time_ns


class _Guard:
    """Context manager that logs and swallows instrumentation failures (for the cold paths)."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, Exception):
            logger.warning("Swarm instrumentation: %s failed; the application is not affected",
                           self.what, exc_info=(exc_type, exc, tb))
            return True
        return False


def _guard(what: str) -> _Guard:
    return _Guard(what)


def _log_failure(what: str) -> None:
    logger.warning("Swarm instrumentation: %s failed; the application is not affected", what, exc_info=True)


def _arg(args: tuple, kwargs: dict, name: str, index: int, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if len(args) > index:
        return args[index]
    return default


def _record_error(span: Any, exc: BaseException) -> None:
    if span is None or not span.is_recording():
        return
    span.set_attribute(u.ERROR_TYPE, u.error_type(exc))
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1024]))


class Telemetry:
    """What the wrappers share: tracer, settings (read once), Swarm's types, the per-instance views."""

    __slots__ = ("tracer", "config", "agent_cls", "result_cls", "limit", "capture_content", "capture_messages",
                 "message_events", "capture_output", "stream_usage", "start_span", "_views", "_last_view",
                 "on_provider", "_provider")

    def __init__(self, tracer: trace.Tracer, config: u.Config, agent_cls: type, result_cls: type):
        self.tracer = tracer
        self.config = config
        self.agent_cls = agent_cls
        self.result_cls = result_cls
        self.limit = config.max_attribute_length
        self.capture_content = config.capture_content
        self.capture_messages = config.capture_messages
        self.message_events = config.message_events
        self.capture_output = config.capture_messages or config.message_events  # the reply's message is kept
        self.stream_usage = config.stream_usage
        self.start_span = tracer.start_span
        # Swarm instance -> the _SwarmView its get_chat_completion runs against (weak: an app may
        # create a Swarm per request).
        self._views: "weakref.WeakKeyDictionary[Any, _SwarmView]" = weakref.WeakKeyDictionary()
        # Most apps have one Swarm: skip the dict lookup. Weak, so that a discarded Swarm's view
        # (and the client it holds) goes with the dictionary entry.
        self._last_view: Callable[[], Optional[_SwarmView]] = lambda: None
        # Called with the global tracer provider whenever a task finds a different one than the last
        # task did (an app may set its provider after instrument(), e.g. under opentelemetry-instrument).
        self.on_provider: Optional[Callable[[Any], None]] = None
        self._provider: Any = None

    def check_provider(self) -> None:
        provider = _get_tracer_provider()
        if provider is not self._provider:
            self._provider = provider
            hook = self.on_provider
            if hook is not None:
                with _guard("adding the identity processor to the tracer provider"):
                    hook(provider)

    def name_of(self, agent: Any) -> str:
        name = getattr(agent, "name", None)
        if type(name) is str and name and len(name) <= self.limit and name.isascii():
            return name
        return _clean_str(name or type(agent).__name__, self.limit)

    def view_of(self, swarm: Any) -> "_SwarmView":
        """The view of this Swarm instance, rebuilt only when its ``client`` was replaced."""
        client = swarm.client
        view = self._last_view()  # one read: another thread may replace it meanwhile, never half-way
        if view is not None and view._swarm() is swarm and view._client is client:
            return view
        try:
            view = self._views.get(swarm)
        except TypeError:  # not weak-referenceable: a view per call
            return _SwarmView(swarm, client)
        if view is None or view._client is not client or view._swarm() is not swarm:
            view = _SwarmView(swarm, client)
            try:
                self._views[swarm] = view
            except TypeError:
                return view
        self._last_view = weakref.ref(view)
        return view


# ======================================================================================
# Per-task state
# ======================================================================================


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


# ======================================================================================
# Chat completions
# ======================================================================================


class _Chat:
    """One chat completion: counts the turn, owns the chat span (unless another
    instrumentation makes it) and turns the response into usage.

    The span is started once the request has been sent (with the time the request began), not
    before: while the request is in flight the context carries this chat under ``_CHAT_KEY``, and
    when another instrumentation starts a model-call span there (the official OpenAI
    instrumentations, logfire, OpenLLMetry, ...), ``IdentitySpanProcessor`` marks this chat
    ``external`` and that span is the chat span of the trace, not a second one of ours."""

    __slots__ = ("task", "stretch", "span", "messages", "stream", "injected", "response_id", "response_model",
                 "finish_reasons", "usage", "out_chars", "out_text", "out_tools", "done", "inner",
                 "span_name", "span_attrs", "start_ns", "external", "first_chunk_ns")

    def __init__(self, task: _Task, stretch: _Stretch):
        self.task = task
        self.stretch = stretch
        self.span = None
        self.span_name: Optional[str] = None
        self.span_attrs: Optional[dict] = None
        self.start_ns = 0
        self.external = False
        self.first_chunk_ns = 0
        self.messages: Any = None
        self.stream = False
        self.injected = False
        self.response_id: Optional[str] = None
        self.response_model: Optional[str] = None
        self.finish_reasons: list[str] = []
        self.usage: Optional[u.Usage] = None
        self.out_chars = 0
        self.out_text: Optional[list[str]] = None
        self.out_tools: Optional[dict[int, dict]] = None
        self.done = False
        self.inner: Any = None

    # called by _CompletionsView.create, right before the real request
    def on_request(self, completions: Any, kwargs: dict, server: Optional[dict] = None) -> dict:
        task = self.task
        tel = task.tel
        stretch = self.stretch
        self.messages = kwargs.get("messages")
        stream = self.stream = bool(kwargs.get("stream"))
        if stream and tel.stream_usage and kwargs.get("stream_options") is None:
            kwargs = dict(kwargs)
            kwargs["stream_options"] = {"include_usage": True}
            self.injected = True
        task.turns += 1
        stretch.turns += 1
        capture = tel.capture_messages
        if stream and tel.capture_output:
            self.out_text = []
            self.out_tools = {}
        attrs = stretch.chat_attrs.copy()
        model = kwargs.get("model")
        if model:
            if not (type(model) is str and len(model) <= tel.limit and model.isascii()):
                model = _clean_str(model, tel.limit)
            if model:
                attrs[_REQUEST_MODEL] = model
        if stream:
            attrs[u.GEN_AI_REQUEST_STREAM] = True
        if server:
            attrs.update(server)
        if capture:
            # Swarm sends the agent's instructions as the first message of the history, so they stay
            # there (gen_ai.system_instructions is for instructions given apart from the history).
            messages = self.messages
            attrs[u.GEN_AI_INPUT_MESSAGES] = u.messages_json(messages if isinstance(messages, (list, tuple))
                                                             else (), tel.limit)
        self.span_name = "chat " + model if model else "chat"
        self.span_attrs = attrs
        self.start_ns = _time_ns()
        return kwargs

    def request_context(self) -> otel_context.Context:
        """The context the request runs in: the agent span current, this chat marked in flight."""
        return _set_value(_CHAT_KEY, self, self.stretch.ctx)

    def sent(self) -> None:
        """The request returned or raised: start our chat span unless another instrumentation made one."""
        attrs = self.span_attrs
        if attrs is None or self.external or self.span is not None:
            return
        self.span_attrs = None
        self.span = self.task.tel.start_span(self.span_name, context=self.stretch.ctx, kind=_CLIENT,
                                             attributes=attrs, start_time=self.start_ns)

    def fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        if self.task.open_chat is self:
            self.task.open_chat = None
        if self.span is not None:
            _record_error(self.span, exc)
            self.span.end()

    def on_response(self, response: Any) -> None:
        """A non-streamed completion arrived."""
        self.response_id = getattr(response, "id", None)
        self.response_model = getattr(response, "model", None)
        choices = getattr(response, "choices", None) or ()
        if choices:
            append = self.finish_reasons.append
            for choice in choices:
                reason = getattr(choice, "finish_reason", None)
                if reason:
                    append(reason if type(reason) is str else str(reason))
        usage = self.usage = u.usage_from_response(getattr(response, "usage", None))
        message = getattr(choices[0], "message", None) if choices else None
        if message is not None and usage is None:
            self.out_chars = len(u.content_text(getattr(message, "content", None)))
            for call in getattr(message, "tool_calls", None) or ():
                fn = getattr(call, "function", None)
                self.out_chars += len(getattr(fn, "name", "") or "") + len(getattr(fn, "arguments", "") or "")
        self.finish(output_message=message if self.task.tel.capture_output else None)

    def on_chunk(self, chunk: Any) -> bool:
        """A streamed chunk arrived; True when it is the usage-only chunk we asked for and
        must be kept from Swarm."""
        if self.response_id is None:
            self.first_chunk_ns = _time_ns()
            self.response_id = getattr(chunk, "id", None)
            self.response_model = getattr(chunk, "model", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = u.usage_from_response(usage)
        choices = chunk.choices
        if not choices:
            return self.injected
        for choice in choices:
            reason = choice.finish_reason
            if reason:
                self.finish_reasons.append(str(reason))
            delta = choice.delta
            if delta is None:
                continue
            content = delta.content
            if content:
                self.out_chars += len(content)
                if self.out_text is not None:
                    self.out_text.append(content)
            calls = delta.tool_calls
            if calls:
                for call in calls:
                    fn = call.function
                    if fn is None:
                        continue
                    name, args = fn.name or "", fn.arguments or ""
                    self.out_chars += len(name) + len(args)
                    if self.out_tools is not None:
                        entry = self.out_tools.setdefault(call.index or 0, {"id": "", "name": "", "arguments": ""})
                        entry["id"] += call.id or ""
                        entry["name"] += name
                        entry["arguments"] += args
        return False

    def _stream_output_message(self) -> Optional[dict]:
        if self.out_text is None:
            return None
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.out_text)}
        if self.out_tools:
            message["tool_calls"] = [{"id": t["id"], "function": {"name": t["name"], "arguments": t["arguments"]}}
                                     for _, t in sorted(self.out_tools.items())]
        return message

    def finish(self, output_message: Any = None) -> None:
        if self.done:
            return
        self.done = True
        task = self.task
        if task.open_chat is self:
            task.open_chat = None
        usage = self.usage
        estimated = usage is None
        if estimated:
            usage = u.Usage(u.estimate_tokens(u.request_text(self.messages)),
                            -(-self.out_chars // u.CHARS_PER_TOKEN))
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        task.input_tokens += input_tokens
        task.output_tokens += output_tokens
        stretch = self.stretch
        stretch.input_tokens += input_tokens
        stretch.output_tokens += output_tokens
        cached, reasoning = usage.cache_read_input_tokens, usage.reasoning_output_tokens
        if cached is not None:
            task.cache_read_tokens = (task.cache_read_tokens or 0) + cached
            stretch.cache_read_tokens = (stretch.cache_read_tokens or 0) + cached
        if reasoning is not None:
            task.reasoning_tokens = (task.reasoning_tokens or 0) + reasoning
            stretch.reasoning_tokens = (stretch.reasoning_tokens or 0) + reasoning
        if estimated:
            task.estimated = stretch.estimated = True
        span = self.span
        if span is None:
            return
        if span.is_recording():
            tel = task.tel
            limit = tel.limit
            attrs: dict[str, Any] = {_USAGE_INPUT: input_tokens, _USAGE_OUTPUT: output_tokens}
            value = self.response_model
            if value:
                attrs[_RESPONSE_MODEL] = value if type(value) is str and len(value) <= limit \
                    and value.isascii() else _clean_str(value, limit)
            value = self.response_id
            if value:
                attrs[_RESPONSE_ID] = value if type(value) is str and len(value) <= limit \
                    and value.isascii() else _clean_str(value, limit)
            reasons = self.finish_reasons
            if reasons:
                attrs[_FINISH_REASONS] = [
                    r if len(r) <= 64 and r.isascii() else _clean_str(r, 64) for r in reasons]
            if cached is not None:
                attrs[_USAGE_CACHE_READ] = cached
            if reasoning is not None:
                attrs[_USAGE_REASONING] = reasoning
            if estimated:
                attrs[u.SWARM_USAGE_ESTIMATED] = True
            if self.first_chunk_ns:
                attrs[u.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (self.first_chunk_ns - self.start_ns) / 1e9
            if tel.capture_output:
                message = output_message if output_message is not None else self._stream_output_message()
                output = None
                if message is not None:
                    reason = self.finish_reasons[0] if self.finish_reasons else None
                    output = u.messages_json([message], limit, reason)
                if tel.capture_messages and output is not None:
                    attrs[u.GEN_AI_OUTPUT_MESSAGES] = output
                if tel.message_events:
                    messages = self.messages
                    details = {u.GEN_AI_OPERATION_NAME: "chat",
                               u.GEN_AI_INPUT_MESSAGES: u.messages_json(
                                   messages if isinstance(messages, (list, tuple)) else (), limit)}
                    if output is not None:
                        details[u.GEN_AI_OUTPUT_MESSAGES] = output
                    span.add_event(u.EVENT_INFERENCE_DETAILS, details)
            span.set_attributes(attrs)
        span.end()

    def abandon(self) -> None:
        """The task ended while this stream was still open (generator closed early): end the
        span with what arrived (usage estimated unless it already came) and release the
        HTTP response Swarm left behind."""
        inner = self.inner
        self.inner = None
        self.finish()
        if inner is not None:
            close = getattr(inner, "close", None)
            if close is not None:
                with _guard("closing an abandoned stream"):
                    close()


def _chat_stream(stream: Any, chat: _Chat):
    """The stream Swarm iterates: every chunk passes through except the usage-only chunk we
    asked for; the chat ends when the stream ends, fails or is closed."""
    on_chunk = chat.on_chunk
    try:
        for chunk in stream:
            try:
                drop = on_chunk(chunk)
            except Exception:
                _log_failure("reading a stream chunk")
                # still keep the chunk we asked for away from Swarm
                drop = chat.injected and not getattr(chunk, "choices", True)
            if not drop:
                yield chunk
    except GeneratorExit:  # closed before the end (Swarm's generator was closed): release the response
        try:
            chat.abandon()
        except Exception:
            _log_failure("ending a closed stream")
        raise
    except Exception as exc:
        try:
            chat.fail(exc)
        except Exception:
            _log_failure("recording a stream error")
        raise
    try:
        chat.finish()
    except Exception:
        _log_failure("ending a streamed chat span")


# Views: what ``self`` is inside the original get_chat_completion. Swarm's own code reads only
# ``self.client`` there, and calls ``self.client.chat.completions.create``; the views route that
# one call through the chat the wrapper prepared for the current task (found in the context, so
# one view per Swarm instance serves every thread and task) and forward everything else.


def _server_attributes(client: Any) -> dict:
    """server.address / server.port of the client's base URL (the scheme's port when none is given)."""
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not host:
        return {}
    port = getattr(url, "port", None) or (443 if getattr(url, "scheme", "") == "https" else 80)
    return {u.SERVER_ADDRESS: str(host), u.SERVER_PORT: int(port)}


class _CompletionsView:
    __slots__ = ("_client", "_server")

    def __init__(self, client: Any):
        self._client = client
        self._server: Optional[dict] = None

    def create(self, *args: Any, **kwargs: Any) -> Any:
        completions = self._client.chat.completions
        task = _get_current().get(_TASK_KEY)
        chat = task.pending_chat if task is not None else None
        if chat is None:  # not the call the wrapper prepared (or the instrumentation failed): just forward
            return completions.create(*args, **kwargs)
        task.pending_chat = None
        token = None
        try:
            server = self._server
            if server is None:
                server = self._server = _server_attributes(self._client)
            kwargs = chat.on_request(completions, kwargs, server)
            token = _attach(chat.request_context())
        except Exception:
            _log_failure("starting a chat span")
        try:
            return completions.create(*args, **kwargs)
        finally:
            if token is not None:
                _detach(token)
                try:
                    chat.sent()
                except Exception:
                    _log_failure("starting a chat span")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.chat.completions, name)


class _ChatView:
    __slots__ = ("_client", "completions")

    def __init__(self, client: Any):
        self._client = client
        self.completions = _CompletionsView(client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.chat, name)


class _ClientView:
    __slots__ = ("_client", "chat")

    def __init__(self, client: Any):
        self._client = client
        self.chat = _ChatView(client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _SwarmView:
    """The Swarm instance, except that ``self.client.chat.completions.create`` goes through the
    chat of the current task. Holds the instance weakly (the view is cached per instance)."""

    __slots__ = ("_swarm", "_client", "client", "__weakref__")

    def __init__(self, swarm: Any, client: Any):
        try:
            self._swarm = weakref.ref(swarm)
        except TypeError:
            self._swarm = lambda swarm=swarm: swarm
        self._client = client
        self.client = _ClientView(client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._swarm(), name)


def _current_task() -> Optional[_Task]:
    ctx = _get_current()
    task = ctx.get(_TASK_KEY)
    if task is None or task.finished or not task.recording or ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_KEY_PLAIN):
        return None
    return task


# ======================================================================================
# Wrapper factories
# ======================================================================================


def traced_get_chat_completion(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        ctx = _get_current()
        task = ctx.get(_TASK_KEY)
        if task is None or task.finished or not task.recording or ctx.get(_SUPPRESS_KEY) \
                or ctx.get(_SUPPRESS_KEY_PLAIN):
            return wrapped(*args, **kwargs)
        chat = view = None
        try:
            if args:
                agent = _arg(args, kwargs, "agent", 0)
                model = _arg(args, kwargs, "model_override", 3)
            else:  # how Swarm calls it
                agent = kwargs.get("agent")
                model = kwargs.get("model_override")
            if not model:
                model = getattr(agent, "model", None)
            stretch = task.stretch_for(agent, model)
            chat = _Chat(task, stretch)
            if type(wrapped) is _MethodType:
                view = tel.view_of(instance)
        except Exception:
            _log_failure("preparing a chat completion")
            chat = None
        if chat is None:
            return wrapped(*args, **kwargs)
        token = _attach(chat.stretch.ctx)
        try:
            if view is not None:
                task.pending_chat = chat
                try:
                    result = wrapped.__func__(view, *args, **kwargs)
                finally:
                    task.pending_chat = None
            else:  # called unbound or through another wrapper: observe without rerouting the client
                inner = None
                with _guard("starting a chat span"):
                    chat.on_request(None, {"model": model, "stream": _arg(args, kwargs, "stream", 4, False)})
                    inner = _attach(chat.request_context())
                try:
                    result = wrapped(*args, **kwargs)
                finally:
                    if inner is not None:
                        _detach(inner)
                        with _guard("starting a chat span"):
                            chat.sent()
        except BaseException as exc:
            with _guard("recording a chat error"):
                chat.fail(exc)
                chat.stretch.fail(exc)
            raise
        finally:
            _detach(token)
        try:
            if chat.stream:
                chat.inner = result
                task.open_chat = chat
                return _chat_stream(result, chat)
            chat.on_response(result)
        except Exception:
            _log_failure("reading a chat completion")
        return result

    return traced_method


class _ToolBatch:
    """One handle_tool_calls call: the tool calls it will run and the span of each."""

    __slots__ = ("task", "stretch", "ctx", "calls", "pending", "called", "agent", "names", "tool_error")

    def __init__(self, task: _Task, tool_calls: Any, names: dict):
        self.task = task
        stretch = self.stretch = task.stretch
        if stretch is not None:
            self.ctx = stretch.ctx
            self.agent = stretch.agent
        else:
            self.ctx = task.ctx
            self.agent = None
        self.names = names
        self.tool_error: Optional[BaseException] = None  # what a tool itself raised
        self.calls = calls = [(tc, getattr(getattr(tc, "function", None), "name", None)) for tc in tool_calls]
        self.pending = [c for c in calls if c[1] in names]
        # Swarm calls a function only when a tool call names it: only those need a stand-in.
        self.called = {c[1] for c in self.pending}

    def _take(self, name: str) -> Any:
        pending = self.pending
        for i, (tc, n) in enumerate(pending):
            if n == name:
                del pending[i]
                return tc
        return None

    def _start(self, name: str, call_id: Optional[str], func: Any = None) -> Any:
        task = self.task
        tel = task.tel
        limit = tel.limit
        if not (type(name) is str and len(name) <= limit and name.isascii()):
            name = _clean_str(name, limit)
        attrs: dict[str, Any] = {_OP: "execute_tool", **task.identity,
                                 u.GEN_AI_TOOL_NAME: name, u.GEN_AI_TOOL_TYPE: "function"}
        if call_id:
            attrs[u.GEN_AI_TOOL_CALL_ID] = call_id if type(call_id) is str and len(call_id) <= limit \
                and call_id.isascii() else _clean_str(call_id, limit)
        if self.stretch is not None:
            attrs[_AGENT] = self.stretch.name
        doc = getattr(func, "__doc__", None) if func is not None else None
        if doc:
            attrs[u.GEN_AI_TOOL_DESCRIPTION] = _tool_description(doc, limit)
        return tel.start_span("execute_tool " + name, context=self.ctx, kind=_INTERNAL, attributes=attrs)

    def call_tool(self, wrapped: Any, name: str, args: tuple, kwargs: dict) -> Any:
        span = None
        try:
            tc = self._take(name)
            span = self._start(name, getattr(tc, "id", None), wrapped)  # a pending call's name is `name`
            if tc is not None and self.task.tel.capture_messages:
                span.set_attribute(u.GEN_AI_TOOL_CALL_ARGUMENTS,
                                   _clean_str(tc.function.arguments, self.task.tel.limit))
        except Exception:
            _log_failure("starting a tool span")
            span = None
        if span is None:
            return wrapped(*args, **kwargs)
        token = _attach(_set_span(span, self.ctx))
        try:
            raw = wrapped(*args, **kwargs)
        except BaseException as exc:
            self.tool_error = exc
            with _guard("recording a tool error"):
                _record_error(span, exc)
                span.end()
            raise
        finally:
            _detach(token)
        try:
            self._tool_done(span, raw)
        except Exception:
            _log_failure("ending a tool span")
        return raw

    def _tool_done(self, span: Any, raw: Any) -> None:
        tel = self.task.tel
        target = None
        if type(raw) is not str:  # the common result needs no type tests
            if isinstance(raw, tel.agent_cls):
                target = raw
            elif isinstance(raw, tel.result_cls):
                target = raw.agent
        if target is not None and target is not self.agent and span.is_recording():
            span.set_attribute(u.SWARM_HANDOFF_TO, tel.name_of(target))
        if tel.capture_messages and span.is_recording():
            if isinstance(raw, tel.result_cls):
                value = raw.value
            elif target is not None:
                value = json.dumps({"assistant": tel.name_of(target)})
            else:
                value = raw
            span.set_attribute(u.GEN_AI_TOOL_CALL_RESULT, _clean_str(value, tel.limit))
        span.end()

    def missing(self) -> None:
        """Swarm answers calls of unknown functions with an error message and goes on; record them."""
        names = self.names
        for tc, name in self.calls:
            if name in names:
                continue
            span = self._start(name or "function", getattr(tc, "id", None))
            if span.is_recording():
                span.set_attribute(u.ERROR_TYPE, "ToolNotFound")
                span.set_status(Status(StatusCode.ERROR, f"Tool {name} not found"))
            span.end()

    def failed_before_call(self, exc: BaseException) -> None:
        """Swarm raised before calling the next tool (its arguments were not valid JSON): the call
        still gets its span, with its name, id and the error."""
        if not self.pending or exc is self.tool_error:
            return
        tc, name = self.pending.pop(0)
        span = self._start(name, getattr(tc, "id", None), self.names.get(name))
        if span.is_recording() and self.task.tel.capture_messages:
            span.set_attribute(u.GEN_AI_TOOL_CALL_ARGUMENTS,
                               _clean_str(getattr(getattr(tc, "function", None), "arguments", ""), self.task.tel.limit))
        _record_error(span, exc)
        span.end()

    def done(self, response: Any) -> None:
        new_agent = getattr(response, "agent", None)
        if new_agent is not None and new_agent is not self.agent:
            self.task.handoff(new_agent)


def _tool_proxy(func: Any, batch: "_ToolBatch") -> Any:
    """A stand-in for one agent function during one handle_tool_calls call.

    Swarm looks at exactly two things of a function there: ``__name__`` (to find it) and whether
    ``context_variables`` is in ``__code__.co_varnames`` (to pass it). The stand-in has the same
    name and mentions ``context_variables`` in its own code exactly when the original does, so
    Swarm calls it with the same arguments. Anything without both attributes is left alone, so
    Swarm fails on it, or not, exactly as it would without us.
    """
    try:
        name = func.__name__
        wants_context = _CTX_VARS in func.__code__.co_varnames
    except Exception:
        return func
    call_tool = batch.call_tool
    if wants_context:
        def proxy(*args, context_variables=_UNSET, **kwargs):
            if context_variables is not _UNSET:
                kwargs[_CTX_VARS] = context_variables
            return call_tool(func, name, args, kwargs)
    else:
        def proxy(*args, **kwargs):
            return call_tool(func, name, args, kwargs)
    proxy.__name__ = name
    proxy.__wrapped__ = func
    return proxy


_descriptions: dict = {}


def _tool_description(doc: str, limit: int) -> str:
    """A function's docstring as the tool description (indentation removed), cached per text."""
    key = (doc, limit)
    out = _descriptions.get(key)
    if out is None:
        import inspect

        out = _clean_str(inspect.cleandoc(doc), limit)
        if len(_descriptions) < 4096:
            _descriptions[key] = out
    return out


def traced_handle_tool_calls(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        task = _current_task()
        if task is None:
            return wrapped(*args, **kwargs)
        batch = None
        try:
            if args:
                tool_calls = _arg(args, kwargs, "tool_calls", 0)
                functions = _arg(args, kwargs, "functions", 1)
            else:
                tool_calls = kwargs.get("tool_calls")
                functions = kwargs.get("functions")
            functions = functions or []
            names = {getattr(f, "__name__", None): f for f in functions}
            batch = _ToolBatch(task, tool_calls or (), names)
            called = batch.called
            if called:
                proxied = [_tool_proxy(f, batch) if getattr(f, "__name__", None) in called else f
                           for f in functions]
                if "functions" in kwargs:
                    kwargs = dict(kwargs, functions=proxied)
                else:
                    args = (args[0], proxied) + tuple(args[2:])
        except Exception:
            _log_failure("preparing tool calls")
            batch = None
        if batch is None:
            return wrapped(*args, **kwargs)
        # Nothing is made current here: each tool span is started with the agent span as its
        # explicit parent and made current around its own tool.
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("recording a tool error"):
                if isinstance(exc, json.JSONDecodeError):  # Swarm parsing the arguments, before the tool ran
                    batch.failed_before_call(exc)
                if batch.stretch is not None:
                    batch.stretch.fail(exc)
            raise
        try:
            batch.missing()
            batch.done(response)
        except Exception:
            _log_failure("finishing tool calls")
        return response

    return traced_method


def traced_run(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        if ("stream" in kwargs and kwargs["stream"]) or (len(args) > 4 and args[4]):
            # run(stream=True) returns run_and_stream(...), which is traced on its own.
            return wrapped(*args, **kwargs)
        ambient = _get_current()
        if ambient.get(_SUPPRESS_KEY) or ambient.get(_SUPPRESS_KEY_PLAIN):
            return wrapped(*args, **kwargs)
        task = None
        try:
            task = _Task(tel, _arg(args, kwargs, "agent", 0), _arg(args, kwargs, "messages", 1),
                         _arg(args, kwargs, "context_variables", 2), ambient)
        except Exception:
            _log_failure("starting a task span")
            task = None
        if task is None:
            return wrapped(*args, **kwargs)
        token = _attach(task.ctx)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("ending a failed task"):
                task.finish(exc)
            raise
        finally:
            _detach(token)
        try:
            task.response = response
            task.finish()
        except Exception:
            _log_failure("ending a task")
        return response

    return traced_method


def traced_run_and_stream(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        ambient = _get_current()
        if ambient.get(_SUPPRESS_KEY) or ambient.get(_SUPPRESS_KEY_PLAIN):
            return wrapped(*args, **kwargs)
        gen = wrapped(*args, **kwargs)
        if not isinstance(gen, _GeneratorType):
            return gen
        # Capture who the user is now, where the app called us; the span starts at the first step.
        return _traced_stream(tel, gen, ambient, _arg(args, kwargs, "agent", 0), _arg(args, kwargs, "messages", 1),
                              _arg(args, kwargs, "context_variables", 2))

    return traced_method


def _traced_stream(tel: Telemetry, gen: types.GeneratorType, ambient: otel_context.Context, agent: Any,
                   messages: Any, context_variables: Any):
    """Yield exactly what Swarm yields, with the task's context attached only while Swarm runs."""
    task: Optional[_Task] = None
    try:
        task = _Task(tel, agent, messages, context_variables, ambient)
    except Exception:
        _log_failure("starting a task span")
    step_ctx = task.ctx if task is not None else ambient
    send = gen.send
    send_value: Any = None
    throw: Optional[BaseException] = None
    while True:
        token = _attach(step_ctx)
        try:
            if throw is not None:
                exc, throw = throw, None
                item = gen.throw(exc)
            else:
                item = send(send_value)
        except StopIteration as stop:
            if task is not None:
                with _guard("ending a task"):
                    task.finish()
            return stop.value
        except BaseException as exc:
            if task is not None:
                with _guard("ending a failed task"):
                    task.finish(exc)
            raise
        finally:
            _detach(token)
        if type(item) is dict and "response" in item and task is not None:
            task.response = item["response"]
        try:
            send_value = yield item
        except GeneratorExit:
            token = _attach(step_ctx)
            try:
                gen.close()
            finally:
                _detach(token)
                if task is not None:
                    with _guard("ending a closed task"):
                        task.finish()
            raise
        except BaseException as exc:  # generator.throw() from the app: hand it to Swarm's generator
            throw = exc
