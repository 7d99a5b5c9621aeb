"""The swarmlens distribution lists its packages by hand (pyproject.toml maps collector_config/ into
it); a package added under reporter/swarmlens must be listed there too, or the wheel lacks it."""

from __future__ import annotations

import pytest

tomllib = pytest.importorskip("tomllib")
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_source_tree_is_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT / "reporter").parts)
             for p in (ROOT / "reporter" / "swarmlens").rglob("__init__.py")}
    assert found | {"swarmlens.collector_config"} == listed


def test_the_test_helpers_are_their_own_distribution_and_not_in_the_wheel():
    """swarmlens_testing (what tests/ and bench/ share) builds from tests/support alone, every package of
    it listed; the swarmlens wheel never carries it."""
    support = ROOT / "tests" / "support"
    listed = set(tomllib.loads((support / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(support).parts) for p in support.rglob("__init__.py")}
    assert found == listed == {"swarmlens_testing"}
    wheel = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert not {p for p in wheel if p.split(".")[0] == "swarmlens_testing"}
