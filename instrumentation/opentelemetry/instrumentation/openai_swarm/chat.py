"""Chat completions: the wrapper of ``Swarm.get_chat_completion`` and ``_Chat``, one completion: it
counts the turn, owns the ``chat`` span (unless another instrumentation makes it), reads the
response's usage (or estimates it) into the chat, agent and task sums, and records the request and
response attributes. Streamed responses pass through ``streaming._chat_stream``; the client call is
routed through ``client_views``.
"""

from __future__ import annotations

import time
import types
from typing import TYPE_CHECKING, Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from . import utils as u
from .common import (
    _CHAT_KEY,
    _REQUEST_MODEL,
    _SUPPRESS_KEY,
    _SUPPRESS_KEY_PLAIN,
    _TASK_KEY,
    _arg,
    _attach,
    _clean_str,
    _detach,
    _get_current,
    _guard,
    _log_failure,
    _record_error,
    _set_value,
)
from .streaming import _chat_stream

if TYPE_CHECKING:
    from .task import _Stretch, _Task
    from .telemetry import Telemetry

# Hot-path aliases (module globals are one dict lookup; attribute chains are several).
_MethodType = types.MethodType
_CLIENT = SpanKind.CLIENT

_USAGE_INPUT = u.GEN_AI_USAGE_INPUT_TOKENS
_USAGE_OUTPUT = u.GEN_AI_USAGE_OUTPUT_TOKENS
_USAGE_CACHE_READ = u.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
_USAGE_REASONING = u.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
_RESPONSE_MODEL = u.GEN_AI_RESPONSE_MODEL
_RESPONSE_ID = u.GEN_AI_RESPONSE_ID
_FINISH_REASONS = u.GEN_AI_RESPONSE_FINISH_REASONS
_time_ns = time.time_ns


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
