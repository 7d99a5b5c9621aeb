"""The rooms of the service package and what each may import (docs/architecture.md), read from
every import statement of the source, at module level and inside functions alike. A new module
must be given a room; an arrow against the layers fails here, naming the line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "reporter" / "swarmlens"

# room -> the rooms it may import (besides itself). Top to bottom: a room imports only below it.
ALLOWED: dict[str, set[str]] = {
    "commands": {"web", "notify", "reports", "render", "ingest", "endpoint", "demo", "scripted_llm", "auth",
                 "store", "base"},
    "web": {"notify", "reports", "render", "auth", "store", "base"},
    "demo": {"scripted_llm", "reports", "auth", "store", "base"},
    "notify": {"reports", "render", "auth", "store", "base"},
    "reports": {"render", "auth", "store", "base"},
    "ingest": {"store", "base"},
    "auth": {"store", "base"},
    "store": {"base"},
    "render": {"base"},
    "endpoint": {"base"},
    "scripted_llm": set(),  # standard library only: it runs without swarmlens installed
    "base": set(),
}
# Third-party packages only some rooms may import.
EXTERNAL: dict[str, set[str]] = {
    "flask": {"web"}, "chdb": {"endpoint"},
    # the demo's apps, and the demo commands that run them (only when chosen)
    "openai": {"demo", "commands"}, "swarm": {"demo", "commands"}, "agents": {"demo", "commands"},
    "gunicorn": {"web", "commands"}, "fpdf": {"render"},
}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "swarmlens":
        return None
    if len(parts) == 1 or parts[1] in ("config", "errors", "sqltext"):
        return "base"
    first = parts[1]
    rooms = {"render": "render", "store": "store", "reports": "reports", "notify": "notify", "web": "web",
             "app": "web", "ingest": "ingest", "embedded": "endpoint", "demo": "demo", "scripted_llm": "scripted_llm",
             "accounts": "auth", "auth": "auth", "commands": "commands", "cli": "commands", "stack": "commands",
             "collector_config": "base"}
    return rooms.get(first)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``source``, relative ones resolved."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # `from swarmlens import config` imports the module swarmlens.config (not so __version__)
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names if target == "swarmlens"
                    and ((PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir())]
    return out


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """The arrows of ``module`` that break the rooms' rules."""
    mine = room_of(module)
    if mine is None:
        return [f"{module}: in no room (give it one in room_of)"]
    out = []
    for line, target in imports(module, source, is_package):
        if target == "swarmlens":
            continue
        top = target.split(".")[0]
        if top == "swarmlens":
            theirs = room_of(target)
            if theirs is None:
                out.append(f"{module}:{line} imports {target}, which is in no room")
            elif theirs != mine and theirs not in ALLOWED[mine]:
                out.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
        elif top in EXTERNAL and mine not in EXTERNAL[top]:
            out.append(f"{module}:{line} ({mine}) imports {top}, which only {sorted(EXTERNAL[top])} may")
        elif mine == "scripted_llm" and top == "swarmlens":
            out.append(f"{module}:{line} imports swarmlens")
    return out


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path.read_text(encoding="utf-8"), path.name == "__init__.py"


def test_every_import_of_the_service_package_follows_the_rooms():
    found = [v for module, source, pkg in _sources() for v in violations(module, source, pkg)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("module, source", [
    ("swarmlens.store.planted", "from swarmlens.web import common\n"),                 # store -> web
    ("swarmlens.render.planted", "def f():\n    from swarmlens.store import client\n"),  # inside a function
    ("swarmlens.reports.planted", "import flask\n"),                                   # Flask below web
    ("swarmlens.notify.planted", "from ..web import common\n"),                         # relative
    ("swarmlens.web.planted", "from swarmlens.embedded import engine\n"),               # the endpoint, from a page
    ("swarmlens.ingest.planted", "from swarmlens import reports\n"),
    ("swarmlens.newroom.planted", "x = 1\n"),                                           # a module in no room
])
def test_a_planted_back_arrow_fails(module, source):
    assert violations(module, source) != []


def test_the_instrumentation_never_imports_swarmlens():
    found = []
    for path in sorted((REPO / "instrumentation" / "opentelemetry").rglob("*.py")):
        for line, target in imports("opentelemetry.instrumentation.x", path.read_text(encoding="utf-8")):
            if target.split(".")[0] == "swarmlens":
                found.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert found == []
