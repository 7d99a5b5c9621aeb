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
  runs under ``_guard``: an internal failure is logged, never raised.
- A span is made current only around synchronous calls, never across a ``yield``: streaming
  attaches the task context for each step of the generator and detaches it before yielding,
  so closing a generator early cannot produce "Failed to detach context" errors.
"""

from __future__ import annotations

import json
import types
from collections import deque
from typing import Any, Callable, Optional

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, Status, StatusCode

from . import utils as u
from .utils import logger

_TASK_KEY = otel_context.create_key("openai_swarm.task")

_ProxyBase = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

try:  # the keys suppress_instrumentation() sets; is_instrumentation_enabled() reads the same two
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
except ImportError:  # pragma: no cover - older API
    _SUPPRESS_KEY = "suppress_instrumentation"
_SUPPRESS_KEY_PLAIN = "suppress_instrumentation"
_CTX_VARS = "context_variables"  # swarm.core.__CTX_VARS_NAME__
_UNSET = object()

# Wrappers of openai's Completions.create from these modules create chat spans of their own;
# when one is active ours would be a duplicate.
_EXTERNAL_CHAT_PREFIXES = (
    "opentelemetry.instrumentation.openai",  # opentelemetry-instrumentation-openai-v2, OpenLLMetry
    "opentelemetry.instrumentation.genai",   # opentelemetry-instrumentation-genai-openai
    "opentelemetry.util.genai",
    "openinference.instrumentation.openai",
    "openlit.",
)
_OWN_PREFIX = "opentelemetry.instrumentation.openai_swarm"

class _Guard:
    """Context manager that logs and swallows instrumentation failures."""

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


_external_cache: dict = {}


def external_chat_instrumentation(completions: Any) -> bool:
    """Whether another instrumentation wraps ``create`` of this completions resource's class."""
    cls = type(completions)
    attr = None
    for klass in cls.__mro__:
        attr = klass.__dict__.get("create")
        if attr is not None:
            break
    cached = _external_cache.get(cls)
    if cached is not None and cached[0] is attr:  # same function object as last time: same answer
        return cached[1]
    result = _is_external(attr)
    _external_cache[cls] = (attr, result)
    return result


def _is_external(attr: Any) -> bool:
    while isinstance(attr, _ProxyBase):
        module = getattr(getattr(attr, "_self_wrapper", None), "__module__", None) or ""
        if module.startswith(_EXTERNAL_CHAT_PREFIXES) and not module.startswith(_OWN_PREFIX):
            return True
        attr = getattr(attr, "__wrapped__", None)
    return False


def _record_error(span: Any, exc: BaseException) -> None:
    if span is None or not span.is_recording():
        return
    span.set_attribute(u.ERROR_TYPE, u.error_type(exc))
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1024]))


class Telemetry:
    """What the wrappers share: tracer, settings, Swarm's types."""

    __slots__ = ("tracer", "config", "agent_cls", "result_cls", "limit")

    def __init__(self, tracer: trace.Tracer, config: u.Config, agent_cls: type, result_cls: type):
        self.tracer = tracer
        self.config = config
        self.agent_cls = agent_cls
        self.result_cls = result_cls
        self.limit = config.max_attribute_length

    def name_of(self, agent: Any) -> str:
        return u.clean_str(getattr(agent, "name", None) or type(agent).__name__, self.limit)


# ======================================================================================
# Per-task state
# ======================================================================================


class _Stretch:
    """One contiguous stretch of an active agent: one invoke_agent span."""

    __slots__ = ("span", "agent", "name", "ctx", "turns", "input_tokens", "output_tokens", "estimated", "failed")

    def __init__(self, task: "_Task", agent: Any, model: Any, handoff_from: Optional[str]):
        tel = task.tel
        self.agent = agent
        self.name = tel.name_of(agent)
        attrs = {u.GEN_AI_OPERATION_NAME: "invoke_agent", **task.identity, u.GEN_AI_AGENT_NAME: self.name}
        if model:
            attrs[u.GEN_AI_REQUEST_MODEL] = u.clean_str(model, tel.limit)
        if handoff_from is not None:
            attrs[u.SWARM_HANDOFF_FROM] = handoff_from
        self.span = tel.tracer.start_span("invoke_agent " + self.name, context=task.ctx, kind=SpanKind.INTERNAL,
                                          attributes=attrs)
        self.ctx = trace.set_span_in_context(self.span, task.ctx)
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.estimated = False
        self.failed = False

    def fail(self, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            _record_error(self.span, exc)

    def end(self) -> None:
        span = self.span
        if span.is_recording():
            span.set_attributes({
                u.GEN_AI_USAGE_INPUT_TOKENS: self.input_tokens,
                u.GEN_AI_USAGE_OUTPUT_TOKENS: self.output_tokens,
                u.SWARM_AGENT_TURNS: self.turns,
            })
            if self.estimated:
                span.set_attribute(u.SWARM_USAGE_ESTIMATED, True)
        span.end()


class _Task:
    """One Swarm.run / run_and_stream call: the root span and the running sums."""

    __slots__ = ("tel", "span", "ctx", "identity", "parent", "recording", "start_agent", "agents", "handoffs",
                 "turns", "input_tokens", "output_tokens", "estimated", "stretch", "pending_from", "open_chat",
                 "response", "finished", "failed")

    def __init__(self, tel: Telemetry, agent: Any, messages: Any, context_variables: Any):
        self.tel = tel
        cfg = tel.config
        ambient = otel_context.get_current()
        self.parent: Optional[_Task] = otel_context.get_value(_TASK_KEY, ambient)
        user = u.resolve_user(ambient, context_variables, cfg)
        self.identity = u.identity_attributes(user)
        self.start_agent = tel.name_of(agent) if agent is not None else None
        attrs: dict[str, Any] = {u.GEN_AI_OPERATION_NAME: "invoke_workflow", **self.identity,
                                 u.GEN_AI_WORKFLOW_NAME: u.WORKFLOW_NAME}
        if self.start_agent is not None:
            attrs[u.GEN_AI_AGENT_NAME] = self.start_agent
        if user.conversation_id is not None:
            attrs[u.GEN_AI_CONVERSATION_ID] = user.conversation_id
        if cfg.capture_content:
            text = u.last_user_message(messages)
            if text:
                attrs[u.SWARM_TASK_INPUT] = u.clean_str(text, tel.limit)
        links = None
        if self.parent is None:
            # One task is one trace (the trace id is the task id): a task started inside some
            # other span (an HTTP request, say) starts a new trace and links back to it.
            current = trace.get_current_span(ambient).get_span_context()
            if current.is_valid:
                links = [Link(current)]
            parent_ctx = trace.set_span_in_context(INVALID_SPAN, ambient)
        else:
            parent_ctx = ambient  # a Swarm run inside a tool of another task stays in that trace
        self.span = tel.tracer.start_span("invoke_workflow swarm", context=parent_ctx, kind=SpanKind.INTERNAL,
                                          attributes=attrs, links=links)
        self.ctx = otel_context.set_value(_TASK_KEY, self, trace.set_span_in_context(self.span, parent_ctx))
        self.recording = self.span.is_recording()
        self.agents: list[str] = []
        self.handoffs = 0
        self.turns = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.estimated = False
        self.stretch: Optional[_Stretch] = None
        self.pending_from: Optional[str] = None
        self.open_chat: Optional[_Chat] = None
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
        if st is not None and st.agent is not agent:
            # The active agent changed without a handoff seen by handle_tool_calls (a subclass
            # may switch agents itself): Swarm only switches on handoffs, so count it as one.
            self.handoff(agent)
            st = None
        if st is None:
            st = self.stretch = _Stretch(self, agent, model, self.pending_from)
            self.pending_from = None
            self._note_agent(st.name)
        return st

    def add_usage(self, stretch: Optional[_Stretch], input_tokens: int, output_tokens: int, estimated: bool) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.estimated = self.estimated or estimated
        if stretch is not None:
            stretch.input_tokens += input_tokens
            stretch.output_tokens += output_tokens
            stretch.estimated = stretch.estimated or estimated

    # -- end --------------------------------------------------------------------------------
    def finish(self, error: Optional[BaseException] = None) -> None:
        if self.finished:
            return
        self.finished = True
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
            if tel.config.capture_content and response is not None:
                text = u.final_assistant_message(getattr(response, "messages", None))
                if text:
                    attrs[u.SWARM_TASK_OUTPUT] = u.clean_str(text, tel.limit)
            span.set_attributes(attrs)
            if error is not None:
                _record_error(span, error)
        span.end()
        parent = self.parent
        if parent is not None and not parent.finished:
            # A nested run's tokens belong to the enclosing task's totals too (its root is not a task
            # of its own in reports); per-agent figures come from its own invoke_agent spans.
            parent.input_tokens += self.input_tokens
            parent.output_tokens += self.output_tokens
            parent.estimated = parent.estimated or self.estimated


# ======================================================================================
# Chat completions
# ======================================================================================


class _Chat:
    """One chat completion: counts the turn, owns the chat span (unless another
    instrumentation makes it) and turns the response into usage."""

    __slots__ = ("task", "stretch", "span", "messages", "stream", "injected", "response_id", "response_model",
                 "finish_reasons", "usage", "out_chars", "out_text", "out_tools", "done", "inner")

    def __init__(self, task: _Task, stretch: _Stretch):
        self.task = task
        self.stretch = stretch
        self.span = None
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
    def on_request(self, completions: Any, kwargs: dict) -> dict:
        task, tel = self.task, self.task.tel
        cfg = tel.config
        self.messages = kwargs.get("messages")
        self.stream = bool(kwargs.get("stream"))
        if self.stream and cfg.stream_usage and kwargs.get("stream_options") is None:
            kwargs = dict(kwargs)
            kwargs["stream_options"] = {"include_usage": True}
            self.injected = True
        task.turns += 1
        self.stretch.turns += 1
        if self.stream and cfg.capture_messages:
            self.out_text = []
            self.out_tools = {}
        if not external_chat_instrumentation(completions):
            model = kwargs.get("model")
            model = u.clean_str(model, tel.limit) if model else None
            attrs: dict[str, Any] = {u.GEN_AI_OPERATION_NAME: "chat", **task.identity,
                                     u.GEN_AI_AGENT_NAME: self.stretch.name}
            if model:
                attrs[u.GEN_AI_REQUEST_MODEL] = model
            if cfg.capture_messages:
                system, rest = u.split_system(self.messages)
                if system:
                    attrs[u.GEN_AI_SYSTEM_INSTRUCTIONS] = u.system_instructions_json(system, tel.limit)
                attrs[u.GEN_AI_INPUT_MESSAGES] = u.messages_json(rest, tel.limit)
            self.span = tel.tracer.start_span("chat " + model if model else "chat", context=self.stretch.ctx,
                                              kind=SpanKind.CLIENT, attributes=attrs)
        return kwargs

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
        for choice in choices:
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self.finish_reasons.append(str(reason))
        self.usage = u.usage_from_response(getattr(response, "usage", None))
        message = getattr(choices[0], "message", None) if choices else None
        if message is not None and self.usage is None:
            self.out_chars = len(u.content_text(getattr(message, "content", None)))
            for call in getattr(message, "tool_calls", None) or ():
                fn = getattr(call, "function", None)
                self.out_chars += len(getattr(fn, "name", "") or "") + len(getattr(fn, "arguments", "") or "")
        self.finish(output_message=message if self.task.tel.config.capture_messages else None)

    def on_chunk(self, chunk: Any) -> bool:
        """A streamed chunk arrived; True when it is the usage-only chunk we asked for and
        must be kept from Swarm."""
        if self.response_id is None:
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
        task.add_usage(self.stretch, usage.input_tokens, usage.output_tokens, estimated)
        span = self.span
        if span is None:
            return
        if span.is_recording():
            tel = task.tel
            attrs: dict[str, Any] = {
                u.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
                u.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            }
            if self.response_model:
                attrs[u.GEN_AI_RESPONSE_MODEL] = u.clean_str(self.response_model, tel.limit)
            if self.response_id:
                attrs[u.GEN_AI_RESPONSE_ID] = u.clean_str(self.response_id, tel.limit)
            if self.finish_reasons:
                attrs[u.GEN_AI_RESPONSE_FINISH_REASONS] = [u.clean_str(r, 64) for r in self.finish_reasons]
            if usage.cache_read_input_tokens is not None:
                attrs[u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_input_tokens
            if usage.reasoning_output_tokens is not None:
                attrs[u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_output_tokens
            if estimated:
                attrs[u.SWARM_USAGE_ESTIMATED] = True
            if tel.config.capture_messages:
                message = output_message if output_message is not None else self._stream_output_message()
                if message is not None:
                    reason = self.finish_reasons[0] if self.finish_reasons else None
                    attrs[u.GEN_AI_OUTPUT_MESSAGES] = u.messages_json([message], tel.limit, reason)
            span.set_attributes(attrs)
        span.end()

    def abandon(self) -> None:
        """The task ended while this stream was still open (generator closed early): end the
        span with what arrived (usage estimated unless it already came) and release the
        HTTP response Swarm left behind."""
        inner = self.inner
        self.finish()
        if inner is not None:
            close = getattr(inner, "close", None)
            if close is not None:
                with _guard("closing an abandoned stream"):
                    close()


class _ChatStream:
    """The stream Swarm iterates: passes every chunk through except the usage-only chunk we
    asked for, and ends the chat when the stream ends."""

    __slots__ = ("_stream", "_iter", "_chat")

    def __init__(self, stream: Any, chat: _Chat):
        self._stream = stream
        self._iter = None
        self._chat = chat

    def __iter__(self) -> "_ChatStream":
        return self

    def __next__(self) -> Any:
        it = self._iter
        if it is None:
            it = self._iter = iter(self._stream)
        chat = self._chat
        while True:
            try:
                chunk = next(it)
            except StopIteration:
                with _guard("ending a streamed chat span"):
                    chat.finish()
                raise
            except Exception as exc:
                with _guard("recording a stream error"):
                    chat.fail(exc)
                raise
            try:
                drop = chat.on_chunk(chunk)
            except Exception:
                _log_failure("reading a stream chunk")
                # still keep the chunk we asked for away from Swarm
                drop = chat.injected and not getattr(chunk, "choices", True)
            if not drop:
                return chunk

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            with _guard("ending a closed stream"):
                self._chat.finish()

    def __enter__(self) -> "_ChatStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _CompletionsView:
    __slots__ = ("_completions", "_chat")

    def __init__(self, completions: Any, chat: _Chat):
        self._completions = completions
        self._chat = chat

    def create(self, *args: Any, **kwargs: Any) -> Any:
        chat = self._chat
        token = None
        try:
            kwargs = chat.on_request(self._completions, kwargs)
            if chat.span is not None:
                token = otel_context.attach(trace.set_span_in_context(chat.span, chat.stretch.ctx))
        except Exception:
            _log_failure("starting a chat span")
        try:
            return self._completions.create(*args, **kwargs)
        finally:
            if token is not None:
                otel_context.detach(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)


class _ChatView:
    __slots__ = ("_chat_resource", "completions")

    def __init__(self, chat_resource: Any, chat: _Chat):
        self._chat_resource = chat_resource
        self.completions = _CompletionsView(chat_resource.completions, chat)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat_resource, name)


class _ClientView:
    __slots__ = ("_client", "chat")

    def __init__(self, client: Any, chat: _Chat):
        self._client = client
        self.chat = _ChatView(client.chat, chat)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _SwarmView:
    """What ``self`` is inside the original get_chat_completion: the Swarm instance, except that
    ``self.client.chat.completions.create`` goes through the chat. Swarm's own code reads only
    ``self.client`` there; everything else is forwarded."""

    __slots__ = ("_swarm", "client")

    def __init__(self, swarm: Any, chat: _Chat):
        self._swarm = swarm
        self.client = _ClientView(swarm.client, chat)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._swarm, name)


def _enabled(ctx: otel_context.Context) -> bool:
    # is_instrumentation_enabled(), reading the context once (this runs several times per completion)
    return not (ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_KEY_PLAIN))


def _current_task() -> Optional[_Task]:
    ctx = otel_context.get_current()
    task = ctx.get(_TASK_KEY)
    if task is None or not task.recording or task.finished or not _enabled(ctx):
        return None
    return task


# ======================================================================================
# Wrapper factories
# ======================================================================================


def traced_get_chat_completion(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        task = _current_task()
        if task is None:
            return wrapped(*args, **kwargs)
        chat = view = None
        try:
            agent = _arg(args, kwargs, "agent", 0)
            model = _arg(args, kwargs, "model_override", 3) or getattr(agent, "model", None)
            stretch = task.stretch_for(agent, model)
            chat = _Chat(task, stretch)
            if isinstance(wrapped, types.MethodType):
                view = _SwarmView(instance, chat)
        except Exception:
            _log_failure("preparing a chat completion")
            chat = None
        if chat is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(chat.stretch.ctx)
        try:
            if view is not None:
                result = wrapped.__func__(view, *args, **kwargs)
            else:  # called unbound or through another wrapper: observe without rerouting the client
                with _guard("starting a chat span"):
                    chat.on_request(None, {"model": model, "stream": _arg(args, kwargs, "stream", 4, False)})
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("recording a chat error"):
                chat.fail(exc)
                chat.stretch.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        try:
            if chat.stream:
                chat.inner = result
                task.open_chat = chat
                return _ChatStream(result, chat)
            chat.on_response(result)
        except Exception:
            _log_failure("reading a chat completion")
        return result

    return traced_method


class _ToolBatch:
    __slots__ = ("task", "stretch", "ctx", "pending", "agent")

    def __init__(self, task: _Task, tool_calls: Any, names: set):
        self.task = task
        self.stretch = task.stretch
        self.ctx = self.stretch.ctx if self.stretch is not None else task.ctx
        self.agent = self.stretch.agent if self.stretch is not None else None
        self.pending = deque(tc for tc in tool_calls if _tool_name(tc) in names)

    def _take(self, name: str) -> Any:
        for i, tc in enumerate(self.pending):
            if _tool_name(tc) == name:
                del self.pending[i]
                return tc
        return None

    def _start(self, name: str, call_id: Optional[str]) -> Any:
        task = self.task
        tel = task.tel
        name = u.clean_str(name, tel.limit)
        attrs: dict[str, Any] = {u.GEN_AI_OPERATION_NAME: "execute_tool", **task.identity,
                                 u.GEN_AI_TOOL_NAME: name, u.GEN_AI_TOOL_TYPE: "function"}
        if call_id:
            attrs[u.GEN_AI_TOOL_CALL_ID] = u.clean_str(call_id, tel.limit)
        if self.stretch is not None:
            attrs[u.GEN_AI_AGENT_NAME] = self.stretch.name
        return tel.tracer.start_span("execute_tool " + name, context=self.ctx, kind=SpanKind.INTERNAL,
                                     attributes=attrs)

    def call_tool(self, wrapped, name, args, kwargs):
        span = None
        try:
            tc = self._take(name)
            span = self._start(_tool_name(tc) or name, getattr(tc, "id", None))
            if self.task.tel.config.capture_messages and tc is not None:
                span.set_attribute(u.GEN_AI_TOOL_CALL_ARGUMENTS,
                                   u.clean_str(tc.function.arguments, self.task.tel.limit))
        except Exception:
            _log_failure("starting a tool span")
            span = None
        if span is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span, self.ctx))
        try:
            raw = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("recording a tool error"):
                _record_error(span, exc)
                span.end()
            raise
        finally:
            otel_context.detach(token)
        try:
            self._tool_done(span, raw)
        except Exception:
            _log_failure("ending a tool span")
        return raw

    def _tool_done(self, span: Any, raw: Any) -> None:
        tel = self.task.tel
        target = None
        if isinstance(raw, tel.agent_cls):
            target = raw
        elif isinstance(raw, tel.result_cls):
            target = raw.agent
        if span.is_recording():
            if target is not None and target is not self.agent:
                span.set_attribute(u.SWARM_HANDOFF_TO, tel.name_of(target))
            if tel.config.capture_messages:
                if isinstance(raw, tel.result_cls):
                    value = raw.value
                elif target is not None:
                    value = json.dumps({"assistant": tel.name_of(target)})
                else:
                    value = raw
                span.set_attribute(u.GEN_AI_TOOL_CALL_RESULT, u.clean_str(value, tel.limit))
        span.end()

    def missing(self, tool_calls: Any, names: set) -> None:
        """Swarm answers calls of unknown functions with an error message and goes on; record them."""
        for tc in tool_calls:
            name = _tool_name(tc)
            if name in names:
                continue
            span = self._start(name or "function", getattr(tc, "id", None))
            if span.is_recording():
                span.set_attribute(u.ERROR_TYPE, "ToolNotFound")
                span.set_status(Status(StatusCode.ERROR, f"Tool {name} not found"))
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


def _tool_name(tc: Any) -> Optional[str]:
    fn = getattr(tc, "function", None)
    return getattr(fn, "name", None)


def traced_handle_tool_calls(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        task = _current_task()
        if task is None:
            return wrapped(*args, **kwargs)
        batch = None
        try:
            tool_calls = list(_arg(args, kwargs, "tool_calls", 0) or ())
            functions = _arg(args, kwargs, "functions", 1) or []
            names = {getattr(f, "__name__", None) for f in functions}
            batch = _ToolBatch(task, tool_calls, names)
            proxied = [_tool_proxy(f, batch) for f in functions]
            if "functions" in kwargs:
                kwargs = dict(kwargs, functions=proxied)
            else:
                args = (args[0], proxied) + tuple(args[2:])
        except Exception:
            _log_failure("preparing tool calls")
            batch = None
        if batch is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(batch.ctx)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("recording a tool error"):
                if batch.stretch is not None:
                    batch.stretch.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        try:
            batch.missing(tool_calls, names)
            batch.done(response)
        except Exception:
            _log_failure("finishing tool calls")
        return response

    return traced_method


def traced_run(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        if _arg(args, kwargs, "stream", 4, False) or not _enabled(otel_context.get_current()):
            # run(stream=True) returns run_and_stream(...), which is traced on its own.
            return wrapped(*args, **kwargs)
        task = None
        with _guard("starting a task span"):
            task = _Task(tel, _arg(args, kwargs, "agent", 0), _arg(args, kwargs, "messages", 1),
                         _arg(args, kwargs, "context_variables", 2))
        if task is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(task.ctx)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            with _guard("ending a failed task"):
                task.finish(exc)
            raise
        finally:
            otel_context.detach(token)
        with _guard("ending a task"):
            task.response = response
            task.finish()
        return response

    return traced_method


def traced_run_and_stream(tel: Telemetry) -> Callable:
    def traced_method(wrapped, instance, args, kwargs):
        if not _enabled(otel_context.get_current()):
            return wrapped(*args, **kwargs)
        gen = wrapped(*args, **kwargs)
        if not isinstance(gen, types.GeneratorType):
            return gen
        # Capture who the user is now, where the app called us; the span starts at the first step.
        ambient = otel_context.get_current()
        return _traced_stream(tel, gen, ambient, _arg(args, kwargs, "agent", 0), _arg(args, kwargs, "messages", 1),
                              _arg(args, kwargs, "context_variables", 2))

    return traced_method


def _traced_stream(tel: Telemetry, gen: types.GeneratorType, ambient: otel_context.Context, agent: Any,
                   messages: Any, context_variables: Any):
    """Yield exactly what Swarm yields, with the task's context attached only while Swarm runs."""
    task: Optional[_Task] = None
    token = otel_context.attach(ambient)
    try:
        with _guard("starting a task span"):
            task = _Task(tel, agent, messages, context_variables)
    finally:
        otel_context.detach(token)
    step_ctx = task.ctx if task is not None else ambient
    send_value: Any = None
    throw: Optional[BaseException] = None
    while True:
        token = otel_context.attach(step_ctx)
        try:
            if throw is not None:
                exc, throw = throw, None
                item = gen.throw(exc)
            else:
                item = gen.send(send_value)
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
            otel_context.detach(token)
        if task is not None and type(item) is dict and "response" in item:
            task.response = item["response"]
        try:
            send_value = yield item
        except GeneratorExit:
            token = otel_context.attach(step_ctx)
            try:
                gen.close()
            finally:
                otel_context.detach(token)
                if task is not None:
                    with _guard("ending a closed task"):
                        task.finish()
            raise
        except BaseException as exc:  # generator.throw() from the app: hand it to Swarm's generator
            throw = exc
