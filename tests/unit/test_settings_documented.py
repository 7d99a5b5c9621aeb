"""Every setting is documented once: a row in the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

from swarmlens import config

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented() -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in README.read_text().splitlines():
        m = re.match(r"^\|\s*`(SWARMLENS_[A-Z0-9_]+)`\s*\|", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_every_setting_has_exactly_one_row_in_the_readme():
    documented = _documented()
    names = config.setting_names()
    assert [n for n in names if documented.get(n, 0) != 1] == []
    assert sorted(set(documented) - set(names)) == [], "README documents settings the code does not read"


def test_settings_parse_from_the_environment():
    cfg = config.load(environ={"SWARMLENS_CLICKHOUSE_LISTEN_PORT": "9000", "SWARMLENS_DATA_DIR": "/tmp/x"})
    assert cfg.SWARMLENS_CLICKHOUSE_LISTEN_PORT == 9000 and cfg.SWARMLENS_DATA_DIR == "/tmp/x"
    try:
        config.load(environ={"SWARMLENS_CLICKHOUSE_LISTEN_PORT": "not-a-port"})
    except ValueError as exc:
        assert "SWARMLENS_CLICKHOUSE_LISTEN_PORT" in str(exc)
    else:
        raise AssertionError("a malformed setting must be refused")
