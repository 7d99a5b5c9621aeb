"""The wrapper factories, one per wrapped Swarm method, as ``SwarmInstrumentor`` wires them up
(``traced_run``, ``traced_run_and_stream``, ``traced_get_chat_completion``,
``traced_handle_tool_calls``), and how the modules behind them fit together.

Where the code is
-----------------
- ``run``: the wrappers of ``Swarm.run`` / ``Swarm.run_and_stream``, one task each;
- ``task``: the per-task state (``_Task``, the agent stretches ``_Stretch``, ``live_stretch``);
- ``chat``: the wrapper of ``get_chat_completion``, ``_Chat`` and the usage it reads;
- ``streaming``: the stream Swarm iterates, which ends the chat span;
- ``client_views``: what ``self.client`` is inside Swarm's ``get_chat_completion``;
- ``tools``: the wrapper of ``handle_tool_calls``: tool spans and handoffs;
- ``telemetry``: ``Telemetry``, what the wrappers share for one ``instrument()``;
- ``common``: context keys, hot-path aliases, failure guards, error recording.

A test that replaces a module-level name replaces it where it is used, in its own module.

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

from .chat import traced_get_chat_completion
from .run import traced_run, traced_run_and_stream
from .task import live_stretch
from .telemetry import Telemetry
from .tools import traced_handle_tool_calls

__all__ = ["Telemetry", "traced_get_chat_completion", "traced_handle_tool_calls", "traced_run",
           "traced_run_and_stream", "live_stretch"]
