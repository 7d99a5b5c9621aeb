"""Streamed completions: ``_chat_stream`` wraps the stream Swarm iterates, passes every chunk to the
chat (keeping the usage-only chunk the instrumentation asked for away from Swarm) and finishes the
chat span when the stream ends, fails or is closed early (then releasing the HTTP response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import _log_failure

if TYPE_CHECKING:
    from .chat import _Chat


def _chat_stream(stream: Any, chat: _Chat):
    """The stream Swarm iterates: every chunk passes through except the usage-only chunk we
    asked for; the chat ends when the stream ends, fails or is closed."""
    on_chunk = chat.on_chunk
    try:
        for chunk in stream:
            try:
                drop = on_chunk(chunk)
            except Exception:
                _log_failure("reading a stream chunk")
                # still keep the chunk we asked for away from Swarm
                drop = chat.injected and not getattr(chunk, "choices", True)
            if not drop:
                yield chunk
    except GeneratorExit:  # closed before the end (Swarm's generator was closed): release the response
        try:
            chat.abandon()
        except Exception:
            _log_failure("ending a closed stream")
        raise
    except Exception as exc:
        try:
            chat.fail(exc)
        except Exception:
            _log_failure("recording a stream error")
        raise
    try:
        chat.finish()
    except Exception:
        _log_failure("ending a streamed chat span")
