"""Identity on every GenAI span, whoever makes it.

The spans this package makes carry the user (``enduser.id``), the session (``session.id``), the
conversation (``gen_ai.conversation.id``) and the active agent (``gen_ai.agent.name``). Spans
that other instrumentations start inside a task (the chat spans of the official OpenAI
instrumentations, logfire, OpenLLMetry; an LLM call a tool makes) know nothing of them. The
``IdentitySpanProcessor`` that ``SwarmInstrumentor.instrument()`` adds to the tracer provider
copies them onto such spans when they start, so that reports attribute every span of a task
without a join. It only adds what a span lacks; it never overwrites.

Outside a Swarm task (an OpenAI Agents SDK app, a bare OpenAI call) the identity comes from the
same sources as a task's: ``swarm_user()`` around the call, then the baggage entries
``enduser.id`` / ``session.id``; it is copied onto every span with a ``gen_ai.*`` attribute.

The processor also tells a Swarm chat completion that another instrumentation made its chat
span (see ``chat._Chat``), so a trace never has two.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

try:  # the processor is only ever added to an SDK tracer provider; an app on the API alone has none
    from opentelemetry.sdk.trace import SpanProcessor
except ImportError:  # pragma: no cover - the distribution installs the SDK for the zero-config import
    SpanProcessor = object  # type: ignore[assignment,misc]

from . import utils as u
from .common import _CHAT_KEY, _MODEL_CALL_OPERATIONS, _OWN_SCOPE, _TASK_KEY, _get_current
from .task import live_stretch

_ENDUSER = u.ENDUSER_ID
_SESSION = u.SESSION_ID
_CONVERSATION = u.GEN_AI_CONVERSATION_ID
_AGENT = u.GEN_AI_AGENT_NAME
_OP = u.GEN_AI_OPERATION_NAME
_CLIENT = SpanKind.CLIENT
# Any of these at start marks a span as a GenAI span (the conventions require the first two).
# OpenInference and OpenLLMetry mark theirs with names of their own conventions.
_GENAI_MARKERS = (u.GEN_AI_OPERATION_NAME, u.GEN_AI_PROVIDER_NAME, "gen_ai.system", u.GEN_AI_REQUEST_MODEL,
                  "openinference.span.kind", "llm.system", "llm.provider", "llm.model_name", "llm.request.type",
                  "traceloop.span.kind")
# Some instrumentations (opentelemetry-util-genai, which the official OpenAI ones use) start their
# spans with no attributes and set them later: the conventions' span name "{operation} {target}"
# marks those.
_GENAI_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "execute_tool",
                               "invoke_agent", "invoke_workflow", "create_agent", "retrieval"})


def _operation(span: Any, attrs: Any) -> Optional[str]:
    """The GenAI operation of a span from another instrumentation, or None for a non-GenAI span."""
    if attrs:
        op = attrs.get(_OP)
        if op is not None:
            return str(op)
        for key in _GENAI_MARKERS:
            if key in attrs:
                return ""
    name = span.name
    if name:
        first = name.split(" ", 1)[0]
        if first in _GENAI_OPERATIONS:
            return first
    return None


class IdentitySpanProcessor(SpanProcessor):
    """Copies the task's user, session, conversation and agent onto GenAI spans of other
    instrumentations when they start. ``enabled`` is cleared by ``uninstrument()`` (a tracer
    provider cannot remove a processor) and set again by the next ``instrument()``."""

    def __init__(self, config: u.Config):
        self.config = config
        self.enabled = True

    def on_start(self, span: Any, parent_context: Optional[otel_context.Context] = None) -> None:
        if not self.enabled:
            return
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name == _OWN_SCOPE:
                return  # ours carry the identity from the start
            attrs = span.attributes or {}
            op = _operation(span, attrs)
            if op is None:
                return
            ctx = parent_context if parent_context is not None else _get_current()
            task = ctx.get(_TASK_KEY)
            if task is not None:
                self._from_task(span, attrs, ctx, task, op)
                return
            stretch = live_stretch(ctx)
            if stretch is not None:  # under our agent span in a context rebuilt from a traceparent
                self._copy(span, attrs, stretch.identity, stretch.name)
            else:
                self._from_context(span, attrs, ctx)
        except Exception:  # never break the span or the application
            u.logger.warning("Swarm instrumentation: copying the identity onto a span failed", exc_info=True)

    def _from_task(self, span: Any, attrs: Any, ctx: otel_context.Context, task: Any, op: str) -> None:
        chat = ctx.get(_CHAT_KEY)
        if chat is not None and chat.task is task and op in _MODEL_CALL_OPERATIONS \
                and (span.kind is _CLIENT or _OP in attrs):
            # A model-call span opened for the request in flight (a CLIENT span named so, or a span
            # declaring the operation): it is the chat span of this call, and ours is not made.
            chat.external = True
        stretch = chat.stretch if chat is not None else task.stretch
        self._copy(span, attrs, task.identity, stretch.name if stretch is not None else None)

    @staticmethod
    def _copy(span: Any, attrs: Any, identity: dict, agent: Optional[str]) -> None:
        add = {}
        for key, value in identity.items():
            if key != u.GEN_AI_PROVIDER_NAME and key not in attrs:
                add[key] = value
        if agent is not None and _AGENT not in attrs:
            add[_AGENT] = agent
        if add:
            span.set_attributes(add)

    def _from_context(self, span: Any, attrs: Any, ctx: otel_context.Context) -> None:
        add = {}
        if "agents.tracing" in sys.modules and "opentelemetry.instrumentation.openai_swarm.agents_sdk" in sys.modules:
            # Inside an Agents SDK task, whose context the SDK does not pass on: the task's identity,
            # agent and id, so the span (the root of a trace of its own) is known as that task's call.
            from .agents_sdk import task_attributes_of_current_span

            add = {k: v for k, v in task_attributes_of_current_span().items() if k not in attrs}
        explicit = ctx.get(u.USER_CONTEXT_KEY)
        if explicit is None and not baggage.get_all(ctx):
            if add:
                span.set_attributes(add)
            return
        user = u.resolve_user(ctx, None, self.config)
        if user.user_id is not None and _ENDUSER not in attrs and _ENDUSER not in add:
            add[_ENDUSER] = user.user_id
        if user.session_id is not None and _SESSION not in attrs and _SESSION not in add:
            add[_SESSION] = user.session_id
        if user.conversation_id is not None and _CONVERSATION not in attrs and _CONVERSATION not in add:
            add[_CONVERSATION] = user.conversation_id
        if add:
            span.set_attributes(add)

    def on_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
