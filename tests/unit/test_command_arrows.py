"""The commands room is a top floor: command-line parsing lives in swarmlens/commands alone, no
area imports it back, and the store reaches neither into the receiver nor into the commands.
Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "reporter" / "swarmlens"


def _name(path: Path) -> str:
    return ".".join(("swarmlens",) + path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path, here: str) -> set[str]:
    """Absolute names of everything the module ``here`` at ``path`` imports (relative imports resolved)."""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(*areas: str):
    for area in areas:
        root = PACKAGE / area
        yield from (root.rglob("*.py") if root.is_dir() else [root])


def _hits(paths, forbidden: tuple[str, ...], name=_name) -> list[str]:
    return sorted(f"{name(p)} imports {imported}" for p in paths for imported in _imports(p, name(p))
                  if any(imported == f or imported.startswith(f + ".") for f in forbidden))


def test_only_the_commands_room_parses_command_lines_and_nothing_imports_it():
    # A package's own `python -m` entry point may parse its arguments: the scripted LLM's runs by path
    # with the standard library alone, where swarmlens cannot be imported.
    outside = [p for p in PACKAGE.rglob("*.py")
               if "commands" not in p.relative_to(PACKAGE).parts and p.name not in ("cli.py", "__main__.py")]
    assert _hits(outside, ("argparse", "swarmlens.commands", "swarmlens.cli")) == []


def test_the_store_imports_neither_ingest_nor_the_commands_nor_the_stack():
    assert _hits(_modules("store"), ("swarmlens.ingest", "swarmlens.commands", "swarmlens.cli",
                                     "swarmlens.stack")) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    planted = tmp_path / "planted.py"  # read as swarmlens.store.planted
    planted.write_text("def f():\n    from ..ingest.state import inserts_paused\n    import argparse\n")
    assert _hits([planted], ("swarmlens.ingest", "argparse"), name=lambda p: "swarmlens.store.planted") == [
        "swarmlens.store.planted imports argparse",
        "swarmlens.store.planted imports swarmlens.ingest.state",
        "swarmlens.store.planted imports swarmlens.ingest.state.inserts_paused"]
