"""docs/schema.md documents every table and column the migrations create, and its examples run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def _documented() -> dict[str, set[str]]:
    """Table name -> the column names listed under its `### \\`table\\`` heading."""
    tables: dict[str, set[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^###\s+`(\w+)`", line)
        if heading:
            current = tables.setdefault(heading.group(1), set())
            continue
        if line.startswith("## "):
            current = None
        row = re.match(r"^\|\s*`([\w.]+)`\s*\|", line)
        if row and current is not None:
            current.add(row.group(1))
    return tables


def test_every_table_and_column_is_documented(migrated, store_client):
    rows = store_client.query(
        "SELECT c.table, c.name FROM system.columns AS c "
        "JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "
        "WHERE c.database IN {dbs:Array(String)} AND t.engine != 'MaterializedView'",
        parameters={"dbs": [migrated.SWARMLENS_OTEL_DATABASE, migrated.SWARMLENS_DATABASE]}).result_rows
    assert len(rows) > 50
    documented = _documented()
    missing = sorted(f"{table}.{column}" for table, column in rows if column not in documented.get(table, ()))
    assert not missing, f"docs/schema.md lacks these columns: {missing}"


def _examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(_examples())))
def test_example_queries_run(migrated, store_client, index):
    sql = _examples()[index]
    sql = re.sub(r"\bswarmlens\.", f"{migrated.SWARMLENS_DATABASE}.", sql)
    sql = re.sub(r"\botel\.", f"{migrated.SWARMLENS_OTEL_DATABASE}.", sql)
    params = {"user": "alice", "q": "refund", "task": "0" * 32}
    store_client.query(sql.strip().rstrip(";"), parameters={k: v for k, v in params.items() if "{" + k + ":" in sql})
