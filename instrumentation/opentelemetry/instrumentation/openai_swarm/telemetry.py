"""``Telemetry``: what the wrappers share for one ``instrument()``: the tracer, the settings (read
once), Swarm's ``Agent`` and ``Result`` types, the client view of each Swarm instance, and the check
that adds the identity processor to a tracer provider set after ``instrument()``.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

from opentelemetry import trace

from . import utils as u
from .client_views import _SwarmView
from .common import _clean_str, _guard

_get_tracer_provider = trace.get_tracer_provider


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
