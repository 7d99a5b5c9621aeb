"""No source file of the product is over 600 lines: a module that grows past it is split by concern, one
module per concern with a docstring saying what it owns (as the instrumentation's patch.py was)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 600
ROOTS = ("reporter/swarmlens", "instrumentation/opentelemetry", "scripts")
SUFFIXES = frozenset({".py", ".html", ".css", ".js", ".sh", ".sql", ".yaml", ".yml"})


def line_count(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.suffix in SUFFIXES and p.is_file() and "__pycache__" not in p.parts)


def oversized(base: Path, roots=ROOTS, limit: int = LIMIT) -> list[str]:
    """Each source file under the roots that is over the limit, as 'path: N lines'."""
    found = []
    for root in roots:
        for path in source_files(base / root):
            n = line_count(path)
            if n > limit:
                found.append(f"{path.relative_to(base).as_posix()}: {n} lines")
    return found


def test_no_source_file_of_the_product_is_over_600_lines():
    for root in ROOTS:  # a root that moved would make the check pass on nothing
        assert source_files(ROOT / root), f"{root} has no source files"
    assert oversized(ROOT) == [], f"over {LIMIT} lines: split these by concern"


def test_the_check_counts_lines_and_every_kind_of_source_file(tmp_path):
    (tmp_path / "scripts" / "deep" / "__pycache__").mkdir(parents=True)
    (tmp_path / "scripts" / "at_limit.py").write_text("x = 1\n" * LIMIT)
    (tmp_path / "scripts" / "no_final_newline.sql").write_text("select 1\n" * LIMIT + "select 2")
    (tmp_path / "scripts" / "deep" / "big.yml").write_text("a: 1\n" * (LIMIT + 1))
    (tmp_path / "scripts" / "deep" / "notes.md").write_text("text\n" * 5000)  # not a source file
    (tmp_path / "scripts" / "deep" / "__pycache__" / "big.py").write_text("x = 1\n" * 5000)
    for suffix in sorted(SUFFIXES - {".yml"}):
        (tmp_path / "scripts" / f"big{suffix}").write_text("line\n" * (LIMIT + 1))
    assert oversized(tmp_path, roots=("scripts",)) == sorted(
        [f"scripts/big{suffix}: {LIMIT + 1} lines" for suffix in SUFFIXES - {".yml"}]
        + [f"scripts/deep/big.yml: {LIMIT + 1} lines", f"scripts/no_final_newline.sql: {LIMIT + 1} lines"])
