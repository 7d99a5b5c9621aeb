"""Explicit user / session context for Swarm tasks.

::

    from opentelemetry.instrumentation.openai_swarm import swarm_user

    with swarm_user("u-42", session_id="s-7"):
        swarm.run(agent, messages)

    @swarm_user("batch-job")
    def nightly():
        swarm.run(agent, messages)

The explicit context wins over baggage and ``context_variables``. Nested contexts inherit what
they do not set: ``with swarm_user(session_id="s-8")`` inside the block above keeps ``u-42``.
The value travels in the OpenTelemetry context, so it follows ``contextvars`` (asyncio tasks,
``contextvars.copy_context().run``) but not a bare ``threading.Thread``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, TypeVar

from opentelemetry import context as otel_context

from .utils import USER_CONTEXT_KEY, UserInfo

F = TypeVar("F", bound=Callable[..., Any])


def current_swarm_user() -> Optional[UserInfo]:
    """The explicit user context in effect, if any."""
    value = otel_context.get_value(USER_CONTEXT_KEY)
    return value if isinstance(value, UserInfo) else None


class swarm_user:  # noqa: N801 - reads as a function at the call site, like contextlib helpers
    """Set the end user (and optionally session / conversation) of the Swarm tasks run inside.

    Usable as a context manager and as a decorator (sync and async functions). The decorator
    enters a fresh context per call, so a decorated function is safe in many threads at once;
    one ``with`` instance belongs to the thread that entered it (it may be nested there).
    """

    __slots__ = ("user_id", "session_id", "conversation_id", "_tokens")

    def __init__(self, user_id: Optional[Any] = None, *, session_id: Optional[Any] = None,
                 conversation_id: Optional[Any] = None):
        self.user_id = None if user_id is None else str(user_id)
        self.session_id = None if session_id is None else str(session_id)
        self.conversation_id = None if conversation_id is None else str(conversation_id)
        self._tokens: list = []

    def _info(self) -> UserInfo:
        outer = current_swarm_user() or UserInfo()
        return UserInfo(
            self.user_id if self.user_id is not None else outer.user_id,
            self.session_id if self.session_id is not None else outer.session_id,
            self.conversation_id if self.conversation_id is not None else outer.conversation_id,
        )

    def __enter__(self) -> UserInfo:
        info = self._info()
        self._tokens.append(otel_context.attach(otel_context.set_value(USER_CONTEXT_KEY, info)))
        return info

    def __exit__(self, *exc: Any) -> None:
        otel_context.detach(self._tokens.pop())

    def _fresh(self) -> "swarm_user":
        return swarm_user(self.user_id, session_id=self.session_id, conversation_id=self.conversation_id)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"swarm_user({self.user_id!r}, session_id={self.session_id!r}, "
                f"conversation_id={self.conversation_id!r})")
