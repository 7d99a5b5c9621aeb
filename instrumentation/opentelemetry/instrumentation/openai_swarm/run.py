"""Tasks: the wrappers of ``Swarm.run`` and ``Swarm.run_and_stream``. Each call starts a ``_Task``
(the root span, one trace per task) and puts it in the context Swarm's loop runs in; the streamed
variant attaches that context only while Swarm's generator runs, one step at a time, and ends the
task when the generator ends, fails or is closed.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, Callable, Optional

from opentelemetry import context as otel_context

from .common import _SUPPRESS_KEY, _SUPPRESS_KEY_PLAIN, _arg, _attach, _detach, _get_current, _guard, _log_failure
from .task import _Task

if TYPE_CHECKING:
    from .telemetry import Telemetry

_GeneratorType = types.GeneratorType


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
