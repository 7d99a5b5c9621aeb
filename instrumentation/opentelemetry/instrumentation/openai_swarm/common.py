"""What every part of the Swarm instrumentation shares: the context keys, the hot-path aliases of the
OpenTelemetry context and tracing functions, the attribute names several span kinds start with, and the
helpers that keep an instrumentation failure away from the app (``_guard``, ``_log_failure``) and
record an exception on a span (``_record_error``).

The aliases are module globals on purpose: the wrappers run several times per completion, and each
module imports them by name (one dict lookup per use, no attribute chain).
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import utils as u
from .utils import logger

_TASK_KEY = otel_context.create_key("openai_swarm.task")
# Set while a chat completion request of a task is in flight, before this package has started a span
# for it: a GenAI chat span another instrumentation starts under it makes ours a duplicate.
_CHAT_KEY = otel_context.create_key("openai_swarm.chat")

try:  # the keys suppress_instrumentation() sets; is_instrumentation_enabled() reads the same two
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
except ImportError:  # pragma: no cover - older API
    _SUPPRESS_KEY = "suppress_instrumentation"
_SUPPRESS_KEY_PLAIN = "suppress_instrumentation"


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
_clean_str = u.clean_str
_INTERNAL = SpanKind.INTERNAL

_OP = u.GEN_AI_OPERATION_NAME
_AGENT = u.GEN_AI_AGENT_NAME
_REQUEST_MODEL = u.GEN_AI_REQUEST_MODEL

_OWN_SCOPE = "opentelemetry.instrumentation.openai_swarm"
# The operations of the GenAI conventions that are one model call: a span of another instrumentation
# with one of these, started while our chat request is in flight, is the chat span of that request.
_MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})


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
