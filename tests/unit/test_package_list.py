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
