"""Every setting the instrumentation reads is documented in docs/instrumentation.md."""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.instrumentation.openai_swarm.utils import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "instrumentation" / "opentelemetry" / "instrumentation" / "openai_swarm"
DOC = (ROOT / "docs" / "instrumentation.md").read_text(encoding="utf-8")


def test_every_environment_variable_read_by_the_code_is_documented():
    names = set()
    for path in PACKAGE.glob("*.py"):
        names |= set(re.findall(r"\bOTEL_[A-Z0-9_]*[A-Z0-9]\b(?!_)", path.read_text(encoding="utf-8")))
    assert {s.env for s in SETTINGS} <= names
    missing = sorted(n for n in names if f"`{n}`" not in DOC)
    assert not missing, f"not documented in docs/instrumentation.md: {missing}"


def test_every_setting_has_a_table_row_with_default_and_keyword():
    for s in SETTINGS:
        rows = [line for line in DOC.splitlines() if line.startswith(f"| `{s.env}`")]
        assert len(rows) == 1, s.env
        assert f"`{s.option}`" in rows[0], s.env
        default = str(s.default).lower() if isinstance(s.default, bool) else str(s.default)
        assert f"`{default}`" in rows[0] or (default == "" and "(empty)" in rows[0]), s.env


def test_every_span_and_attribute_of_the_contract_is_in_the_reference():
    for name in ("invoke_workflow swarm", "invoke_agent {agent}", "chat {model}", "execute_tool {function}"):
        assert f"`{name}`" in DOC
    from opentelemetry.instrumentation.openai_swarm import utils
    attrs = [v for k, v in vars(utils).items() if k.isupper() and isinstance(v, str)
             and re.fullmatch(r"(gen_ai|swarm|enduser|session|error)\.[a-z_.]+", v)]
    missing = [a for a in attrs if f"`{a}`" not in DOC]
    assert not missing, missing


def test_every_module_of_the_package_is_in_the_code_table():
    section = DOC.split("## The code\n", 1)[1].split("\n## ", 1)[0]
    missing = sorted(p.name for p in PACKAGE.glob("*.py") if f"`{p.name}`" not in section)
    assert not missing, f"not in 'The code' of docs/instrumentation.md: {missing}"
