"""Tool calls and handoffs: the wrapper of ``Swarm.handle_tool_calls``. ``_ToolBatch`` is one call
of it: an ``execute_tool`` span per tool call (run by a stand-in of the agent function, made by
``_tool_proxy``), a span with the error for a call of an unknown function or one whose arguments
Swarm cannot parse, ``swarm.handoff.to`` when a function returns another agent, and the handoff
itself on the task when the active agent changes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Optional

from opentelemetry.trace import Status, StatusCode

from . import utils as u
from .common import (
    _AGENT,
    _INTERNAL,
    _OP,
    _arg,
    _attach,
    _clean_str,
    _detach,
    _guard,
    _log_failure,
    _record_error,
    _set_span,
)
from .task import _current_task

if TYPE_CHECKING:
    from .task import _Task
    from .telemetry import Telemetry

_CTX_VARS = "context_variables"  # swarm.core.__CTX_VARS_NAME__
_UNSET = object()


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
