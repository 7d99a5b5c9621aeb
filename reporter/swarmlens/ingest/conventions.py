"""Attributes of other conventions, mapped onto the OpenTelemetry GenAI ones as spans are ingested.

Apps already instrumented with OpenInference (``llm.*``, ``user.id``, ``session.id``) or with
OpenLLMetry's older releases (``gen_ai.usage.prompt_tokens``, ``gen_ai.system``, ``traceloop.*``)
would otherwise store model calls that no view reads: no tokens, no user. ``to_genai`` adds the
GenAI name of each such attribute the span lacks; a GenAI attribute the span already has is never
overwritten, and the original attributes stay. The table of mapped names is in
docs/telemetry-contract.md, section 9.
"""

from __future__ import annotations

# (other name, GenAI name): copied when the span has the first and lacks the second.
RENAMES: tuple[tuple[str, str], ...] = (
    # OpenInference
    ("llm.model_name", "gen_ai.request.model"),
    ("llm.model_name", "gen_ai.response.model"),
    ("llm.provider", "gen_ai.provider.name"),
    ("llm.system", "gen_ai.provider.name"),
    ("llm.token_count.prompt", "gen_ai.usage.input_tokens"),
    ("llm.token_count.completion", "gen_ai.usage.output_tokens"),
    ("llm.token_count.prompt_details.cache_read", "gen_ai.usage.cache_read.input_tokens"),
    ("llm.token_count.completion_details.reasoning", "gen_ai.usage.reasoning.output_tokens"),
    ("user.id", "enduser.id"),
    # OpenLLMetry, older releases and its association properties
    ("gen_ai.usage.prompt_tokens", "gen_ai.usage.input_tokens"),
    ("gen_ai.usage.completion_tokens", "gen_ai.usage.output_tokens"),
    ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("gen_ai.system", "gen_ai.provider.name"),
    ("traceloop.association.properties.user_id", "enduser.id"),
    ("traceloop.association.properties.session_id", "session.id"),
)

# Any of these on a span means a mapping may apply; a span with none is returned untouched, so the
# common case (the GenAI conventions already) costs one set intersection.
_TRIGGERS = frozenset(name for name, _ in RENAMES) | {"openinference.span.kind", "llm.request.type",
                                                      "traceloop.span.kind"}

_OPERATIONS = {
    # OpenInference span kinds
    ("openinference.span.kind", "LLM"): "chat",
    # OpenLLMetry request types
    ("llm.request.type", "chat"): "chat",
    ("llm.request.type", "completion"): "text_completion",
    # OpenLLMetry's @workflow / @agent decorators
    ("traceloop.span.kind", "workflow"): "invoke_workflow",
    ("traceloop.span.kind", "agent"): "invoke_agent",
}


def to_genai(attrs: dict[str, str]) -> dict[str, str]:
    """``attrs`` with the GenAI names of the other conventions' attributes added (in place)."""
    if attrs.keys().isdisjoint(_TRIGGERS):
        return attrs
    for other, genai in RENAMES:
        value = attrs.get(other)
        if value and not attrs.get(genai):
            attrs[genai] = value
    if not attrs.get("gen_ai.operation.name"):
        for key in ("openinference.span.kind", "llm.request.type", "traceloop.span.kind"):
            operation = _OPERATIONS.get((key, attrs.get(key, "")))
            if operation:
                attrs["gen_ai.operation.name"] = operation
                break
    operation = attrs.get("gen_ai.operation.name")
    name = attrs.get("traceloop.entity.name") or attrs.get("traceloop.workflow.name")
    if name and attrs.get("traceloop.span.kind") in ("workflow", "agent"):
        if operation == "invoke_workflow" and not attrs.get("gen_ai.workflow.name"):
            attrs["gen_ai.workflow.name"] = attrs.get("traceloop.workflow.name") or name
        elif operation == "invoke_agent" and not attrs.get("gen_ai.agent.name"):
            attrs["gen_ai.agent.name"] = attrs.get("traceloop.entity.name") or name
    return attrs
