"""One error hierarchy: every error class swarmlens defines for people to read derives from
swarmlens.errors.SwarmlensError, and the command line turns one into a single line and exit 1."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reporter" / "swarmlens"
# Control flow inside one module (never leaves it), the demo's simulated tool failures, and the
# scripted LLM's (standard library only, runnable without swarmlens).
OUTSIDE = {"scripted_llm/script.py": {"ScriptError"}, "demo/agents.py": {"SubscriptionServiceError"}}


def test_every_public_error_class_derives_from_swarmlens_error():
    import importlib

    from swarmlens.errors import SwarmlensError

    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {ast.unparse(b) for b in node.bases}
            if not any(b.endswith(("Exception", "Error", "InvalidInput", "Full", "Unavailable", "BadRequest"))
                       for b in bases) or node.name in OUTSIDE.get(rel, ()):
                continue
            module = "swarmlens." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            cls = getattr(importlib.import_module(module), node.name)
            if isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, SwarmlensError):
                if node.name in ("Drop", "Closed"):  # the endpoint's connection control flow
                    continue
                found.append(f"{rel}: {node.name}")
    assert found == []


def test_the_command_line_prints_a_swarmlens_error_on_one_line(tmp_path):
    # a restore of a directory that holds no backup: the command's own error, one line, exit 2
    r = subprocess.run([sys.executable, "-m", "swarmlens.cli", "restore", str(tmp_path), "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
