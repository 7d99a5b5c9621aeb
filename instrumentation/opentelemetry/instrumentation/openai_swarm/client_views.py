"""The client views: what ``self`` is inside Swarm's original ``get_chat_completion``.

Swarm's own code reads only ``self.client`` there, and calls ``self.client.chat.completions.create``;
the views route that one call through the chat the wrapper prepared for the current task (found in
the context, so one view per Swarm instance serves every thread and task) and forward everything
else. ``Telemetry.view_of`` builds one per Swarm instance (and client), not per call.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

from . import utils as u
from .common import _TASK_KEY, _attach, _detach, _get_current, _log_failure


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
