"""No file of bench/, tests/ or scripts/ edits sys.path: they import swarmlens and swarmlens_testing
(tests/support) as installed packages, and the benchmarks import each other as the package bench/.
A sys.path edit would hide a missing install, or let one folder reach into another's files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("bench", "tests", "scripts")
MUTATORS = {"insert", "append", "extend", "remove", "pop", "clear", "__setitem__", "__delitem__", "__iadd__"}


def sys_path_edits(source: str, filename: str = "<source>") -> list[str]:
    """Each edit of sys.path in the source, as 'line N: what', whatever name sys or path has there."""
    tree = ast.parse(source, filename)
    sys_names, path_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            sys_names |= {a.asname or a.name for a in node.names if a.name == "sys"}
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            path_names |= {a.asname or a.name for a in node.names if a.name == "path"}

    def is_path(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id in sys_names
        return isinstance(node, ast.Name) and node.id in path_names

    def target_is_path(t: ast.AST) -> bool:
        if isinstance(t, ast.Subscript):  # sys.path[:] = ..., sys.path[0] = ...
            return is_path(t.value)
        if isinstance(t, (ast.Tuple, ast.List)):
            return any(target_is_path(e) for e in t.elts)
        return is_path(t)

    edits = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS and is_path(node.func.value)):
            edits.append(f"line {node.lineno}: sys.path.{node.func.attr}()")
        elif isinstance(node, ast.Assign) and any(target_is_path(t) for t in node.targets):
            edits.append(f"line {node.lineno}: assignment to sys.path")
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and target_is_path(node.target):
            edits.append(f"line {node.lineno}: assignment to sys.path")
        elif isinstance(node, ast.Delete) and any(target_is_path(t) for t in node.targets):
            edits.append(f"line {node.lineno}: deletion from sys.path")
    return sorted(edits, key=lambda e: int(e.split()[1].rstrip(":")))


def _python_files():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(part in (".venv", "__pycache__") for part in path.parts):
                continue
            yield path


def test_no_file_of_bench_tests_or_scripts_edits_sys_path():
    files = list(_python_files())
    # the scan reads the folders it means: the benchmarks, the test packages, the shared helpers
    names = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"bench/bench_reports.py", "tests/conftest.py", "tests/bench/test_bench_tiny.py",
            "tests/support/swarmlens_testing/spans.py"} <= names
    found = {p.relative_to(ROOT).as_posix(): e for p in files if (e := sys_path_edits(p.read_text(), str(p)))}
    assert found == {}, f"import the installed package instead (swarmlens, swarmlens_testing, bench.NAME): {found}"


@pytest.mark.parametrize("source, edit", [
    ("import sys\nsys.path.insert(0, 'tests')\n", "line 2: sys.path.insert()"),
    ("import os, sys\n\ndef f():\n    sys.path.append(os.getcwd())\n", "line 4: sys.path.append()"),
    ("import sys as _sys\n_sys.path.extend(['bench'])\n", "line 2: sys.path.extend()"),
    ("from sys import path\npath.insert(0, 'bench')\n", "line 2: sys.path.insert()"),
    ("from sys import path as p\np.append('x')\n", "line 2: sys.path.append()"),
    ("import sys\nsys.path = ['bench'] + sys.path\n", "line 2: assignment to sys.path"),
    ("import sys\nsys.path[:0] = ['bench']\n", "line 2: assignment to sys.path"),
    ("import sys\nsys.path += ['bench']\n", "line 2: assignment to sys.path"),
    ("import sys\ndel sys.path[0]\n", "line 2: deletion from sys.path"),
])
def test_the_scan_finds_each_way_of_editing_sys_path(source, edit):
    assert sys_path_edits(source) == [edit]


def test_the_scan_leaves_reading_sys_path_and_other_lists_alone():
    source = ("import sys\nimport os\nprint(sys.path[0], len(sys.path))\npaths = list(sys.path)\n"
              "paths.insert(0, 'x')\nos.path.join('a', 'b')\nsys.argv.insert(1, '--quick')\n")
    assert sys_path_edits(source) == []
