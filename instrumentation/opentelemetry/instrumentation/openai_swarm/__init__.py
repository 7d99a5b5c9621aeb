"""OpenTelemetry instrumentation for OpenAI Swarm: every task becomes one trace.

One call of ``Swarm.run()`` (or one full iteration of ``Swarm.run_and_stream()``) is one task
and one trace::

    invoke_workflow swarm            root: task input/output, agents, handoffs, turns, token totals
    ├── invoke_agent Triage          one per stretch of an active agent: that stretch's tokens
    │   ├── chat gpt-4o              one per completion: model, response id, finish reasons, usage
    │   └── execute_tool transfer_to_billing   one per tool call; swarm.handoff.to on a handoff
    └── invoke_agent Billing         swarm.handoff.from = "Triage"
        └── ...

Usage
-----

Zero-config, first line of the app (sets up the SDK and an OTLP exporter from ``OTEL_*``
variables when the app has not, and instruments Swarm whenever it is imported)::

    import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401

With an SDK the app configures itself::

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor
    SwarmInstrumentor().instrument()          # tracer_provider=..., capture_content=False, ...

With no code change: ``opentelemetry-instrument python app.py``.

Who the user is (put on every span as ``enduser.id`` / ``session.id``), by precedence::

    from opentelemetry.instrumentation.openai_swarm import swarm_user
    with swarm_user("u-42", session_id="s-7"):     # 1. explicit (also a decorator)
        swarm.run(agent, messages)
    # 2. OpenTelemetry baggage enduser.id / session.id
    # 3. context_variables["user_id"] / ["session_id"] (keys configurable)

Configuration
-------------

Environment variables, each overridable by the keyword of ``instrument()`` in brackets:

- ``OTEL_INSTRUMENTATION_SWARM_CAPTURE_CONTENT`` [capture_content], default ``true``: task
  input and output on the root span.
- ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` [capture_messages], default ``false``:
  full message lists on chat spans, tool arguments and results on tool spans.
- ``OTEL_INSTRUMENTATION_SWARM_MAX_ATTRIBUTE_LENGTH`` [max_attribute_length], default ``4096``.
- ``OTEL_INSTRUMENTATION_SWARM_USER_KEY`` [user_key], default ``user_id``.
- ``OTEL_INSTRUMENTATION_SWARM_SESSION_KEY`` [session_key], default ``session_id``.
- ``OTEL_INSTRUMENTATION_SWARM_STREAM_USAGE`` [stream_usage], default ``true``: request
  ``stream_options.include_usage`` on streamed completions for exact token counts.

``docs/instrumentation.md`` has the full reference (spans, attributes, privacy switches).
When another OpenAI instrumentation (``opentelemetry-instrumentation-openai-v2``,
``-genai-openai``, logfire, ...) opens a chat span for a completion, that span is the chat span and
this package only reads the usage, so nothing is counted twice; ``IdentitySpanProcessor`` (added to
the tracer provider by ``instrument()``) puts the task's user, session, conversation and agent on it.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version as dist_version
from typing import Any, Collection

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import get_tracer

from .identity import IdentitySpanProcessor
from .package import _instruments, _instruments_github
from .patch import (
    Telemetry,
    traced_get_chat_completion,
    traced_handle_tool_calls,
    traced_run,
    traced_run_and_stream,
)
from .user_context import current_swarm_user, swarm_user
from .utils import SETTINGS, load_config, logger
from .version import __version__

__all__ = ["SwarmInstrumentor", "IdentitySpanProcessor", "swarm_user", "current_swarm_user", "SETTINGS",
           "__version__"]

_WRAPPED_METHODS = (
    ("run", traced_run),
    ("run_and_stream", traced_run_and_stream),
    ("get_chat_completion", traced_get_chat_completion),
    ("handle_tool_calls", traced_handle_tool_calls),
)

_hook_registered = False
# (tracer provider, the identity processor added to it): a provider cannot remove a processor, so
# uninstrument() disables it and the next instrument() enables the same one again. A list searched by
# identity, since some providers (logfire's) are neither hashable nor weakly referenceable.
_processors: list = []


def _add_identity_processor(provider: Any, config: Any) -> None:
    """Adds the identity processor to an SDK tracer provider (once); other providers have no processors."""
    if provider is None or not hasattr(provider, "add_span_processor"):
        return
    for known, processor in _processors:
        if known is provider:
            break
    else:
        processor = IdentitySpanProcessor(config)
        provider.add_span_processor(processor)
        _processors.append((provider, processor))
    processor.config = config
    processor.enabled = True


def _installed(dist: str) -> bool:
    try:
        dist_version(dist)
        return True
    except PackageNotFoundError:
        return False


class SwarmInstrumentor(BaseInstrumentor):
    """Instruments ``swarm.Swarm`` (OpenAI Swarm). The methods are wrapped on the class, so
    instances created before ``instrument()`` are covered too; ``uninstrument()`` restores the
    original functions. If ``swarm`` is not imported yet, it is patched when it is."""

    _telemetry: Telemetry | None = None
    _active = False
    _patched = False

    def instrumentation_dependencies(self) -> Collection[str]:
        if _installed("openai-swarm") or not _installed("swarm"):
            return _instruments
        return _instruments_github

    def _instrument(self, **kwargs: Any) -> None:
        config = load_config(kwargs)
        tracer = get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        self._config = config
        self._tracer = tracer
        self._active = True
        # Spans of other instrumentations in a task get the identity: on the provider given and on
        # the global one (where the official OpenAI instrumentations make theirs by default).
        for provider in {id(p): p for p in (kwargs.get("tracer_provider"), trace.get_tracer_provider())}.values():
            _add_identity_processor(provider, config)
        if "swarm.core" in sys.modules:
            self._patch(sys.modules["swarm.core"])
        else:
            global _hook_registered
            if not _hook_registered:
                _hook_registered = True
                wrapt.register_post_import_hook(_on_swarm_import, "swarm.core")

    def _patch(self, core: Any) -> None:
        if self._patched or not self._active:
            return
        from swarm.types import Agent, Result  # the module that defines them is loaded with swarm.core

        self._telemetry = Telemetry(self._tracer, self._config, Agent, Result)
        config = self._config
        self._telemetry.on_provider = lambda provider: _add_identity_processor(provider, config)
        for name, factory in _WRAPPED_METHODS:
            wrapt.wrap_function_wrapper(core.Swarm, name, factory(self._telemetry))
        self._patched = True

    def _uninstrument(self, **kwargs: Any) -> None:
        self._active = False
        for _, processor in _processors:
            processor.enabled = False
        if not self._patched:
            return
        core = sys.modules.get("swarm.core")
        if core is not None:
            for name, _ in _WRAPPED_METHODS:
                unwrap(core.Swarm, name)
        self._patched = False
        self._telemetry = None


def _on_swarm_import(module: Any) -> None:
    try:
        SwarmInstrumentor()._patch(module)
    except Exception:  # never break the app's `import swarm`
        logger.warning("Swarm instrumentation: patching swarm on import failed", exc_info=True)
