"""swarmlens.ingest.conventions: the other conventions' names onto the GenAI ones, as the table of
docs/telemetry-contract.md (section 9) says; never overwriting what a span already has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from swarmlens.ingest.conventions import RENAMES, to_genai

DOC = Path(__file__).resolve().parents[2] / "docs" / "telemetry-contract.md"


def test_openinference_llm_span():
    attrs = to_genai({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.system": "openai",
                      "llm.token_count.prompt": "12", "llm.token_count.completion": "3", "user.id": "u1",
                      "session.id": "s1", "llm.token_count.prompt_details.cache_read": "4"})
    assert {k: attrs[k] for k in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
                                  "gen_ai.provider.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                  "gen_ai.usage.cache_read.input_tokens", "enduser.id", "session.id")} == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
        "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "3",
        "gen_ai.usage.cache_read.input_tokens": "4", "enduser.id": "u1", "session.id": "s1"}
    assert attrs["llm.model_name"] == "gpt-4o"  # the originals stay


def test_openllmetry_legacy_names_and_association_properties():
    attrs = to_genai({"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
                      "gen_ai.usage.prompt_tokens": "61", "gen_ai.usage.completion_tokens": "8",
                      "traceloop.association.properties.user_id": "u2",
                      "traceloop.association.properties.session_id": "s2"})
    assert (attrs["gen_ai.operation.name"], attrs["gen_ai.provider.name"], attrs["gen_ai.usage.input_tokens"],
            attrs["gen_ai.usage.output_tokens"], attrs["enduser.id"], attrs["session.id"]) == \
        ("chat", "openai", "61", "8", "u2", "s2")
    assert to_genai({"llm.request.type": "completion"})["gen_ai.operation.name"] == "text_completion"


@pytest.mark.parametrize("kind,op,key", [("workflow", "invoke_workflow", "gen_ai.workflow.name"),
                                         ("agent", "invoke_agent", "gen_ai.agent.name")])
def test_traceloop_workflow_and_agent_spans(kind, op, key):
    attrs = to_genai({"traceloop.span.kind": kind, "traceloop.entity.name": "support", "traceloop.workflow.name": "support"})
    assert (attrs["gen_ai.operation.name"], attrs[key]) == (op, "support")


def test_genai_names_a_span_has_are_never_overwritten():
    attrs = to_genai({"gen_ai.operation.name": "embeddings", "openinference.span.kind": "LLM", "user.id": "a",
                      "enduser.id": "b", "gen_ai.usage.input_tokens": "5", "llm.token_count.prompt": "9"})
    assert (attrs["gen_ai.operation.name"], attrs["enduser.id"], attrs["gen_ai.usage.input_tokens"]) == \
        ("embeddings", "b", "5")


def test_a_span_of_the_genai_conventions_is_left_as_it_is():
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "1"}
    assert to_genai(dict(attrs)) == attrs


def test_every_mapped_name_is_in_the_contract_table():
    table = DOC.read_text().split("## 9.")[1]
    rows = re.findall(r"^\| [^|]+ \| `([^`]+)`", table, re.M)
    for other, _ in RENAMES:
        assert other in rows, f"{other} is mapped but not in docs/telemetry-contract.md section 9"
