"""`swarmlens db check`: every table a materialized view feeds, compared with what its source says.

A materialized view and its source table are not written atomically: a crash between the two
leaves a rollup short of its details, and a block counted twice leaves it long. Insert
deduplication (with ``deduplicate_blocks_in_dependent_materialized_views``) prevents most of that;
this check finds and repairs whatever is left, from the source read with ``FINAL``.

For each view (sources before the tables fed from them), both sides are reduced per partition of
the target to a fingerprint: per key of the target's sort key, the finalized aggregates (``sum``
for SummingMergeTree columns, ``fMerge`` / ``f`` for AggregateFunction / SimpleAggregateFunction
columns); for a ReplacingMergeTree, the set of keys. A partition whose fingerprints differ is
rebuilt from the source into a staging table and swapped in with ``REPLACE PARTITION``, which
fires no view, so nothing downstream is counted again; the downstream tables are checked next.

Identifiers come from the server's own catalogue and are quoted; partition values are bound as
typed parameters.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

_TO = re.compile(r"\bTO\s+(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\.(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)")
_FROM = re.compile(r"\bFROM\s+(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\.(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)")
_AGG = re.compile(r"^(Simple)?AggregateFunction\((\w+)")
_NONDETERMINISTIC = {"any", "anyLast", "anyHeavy"}


def q(name: str) -> str:
    """An identifier, quoted for ClickHouse."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _unquote(name: str) -> str:
    return name[1:-1].replace("\\`", "`").replace("\\\\", "\\") if name.startswith("`") else name


@dataclass
class View:
    name: str
    database: str
    target_db: str
    target: str
    source_db: str
    source: str
    select: str
    engine: str = ""
    partition_key: str = ""
    keys: list[str] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)  # (column, aggregate expression)
    produced: list[tuple[str, str]] = field(default_factory=list)  # (column, target type) the view writes
    depth: int = 0
    unchecked: str = ""  # why this view's table cannot be recomputed from stored rows

    @property
    def label(self) -> str:
        return f"{self.target_db}.{self.target}"


@dataclass
class Finding:
    table: str
    partition: str
    rollup_keys: int
    detail_keys: int
    repaired: bool = False
    still_differs: bool = False


def views(client, databases: list[str]) -> list[View]:
    """The materialized views of the databases with a TO table, sources before their dependents."""
    rows = client.query(
        "SELECT database, name, create_table_query, as_select FROM system.tables "
        "WHERE database IN {dbs:Array(String)} AND engine = 'MaterializedView' ORDER BY database, name",
        parameters={"dbs": databases}).result_rows
    found: list[View] = []
    for database, name, create, select in rows:
        to, src = _TO.search(create), _FROM.search(select)
        if not to or not src:
            continue
        found.append(View(name, database, _unquote(to.group(1)), _unquote(to.group(2)),
                          _unquote(src.group(1)), _unquote(src.group(2)), select))
    targets = {(v.target_db, v.target): v for v in found}

    def depth(v: View, seen: frozenset = frozenset()) -> int:
        parent = targets.get((v.source_db, v.source))
        if parent is None or parent.name in seen:
            return 0
        return 1 + depth(parent, seen | {v.name})

    feeding: dict[tuple[str, str], int] = {}
    for v in found:
        feeding[(v.target_db, v.target)] = feeding.get((v.target_db, v.target), 0) + 1
    for v in found:
        v.depth = depth(v)
        source_engine = client.query("SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                                     parameters={"db": v.source_db, "t": v.source}).result_rows
        if source_engine and source_engine[0][0] == "Null":
            v.unchecked = f"fed from {v.source_db}.{v.source}, a Null table that keeps no rows to recompute from"
        elif feeding[(v.target_db, v.target)] > 1:
            v.unchecked = f"fed by {feeding[(v.target_db, v.target)]} views, some of them reading other tables"
        meta = client.query("SELECT engine, partition_key, sorting_key FROM system.tables "
                            "WHERE database = {db:String} AND name = {t:String}",
                            parameters={"db": v.target_db, "t": v.target}).result_rows
        if not meta:
            continue
        v.engine, v.partition_key, sorting = meta[0]
        cols = client.query("SELECT name, type, is_in_sorting_key FROM system.columns WHERE database = {db:String} "
                            "AND table = {t:String} AND default_kind NOT IN ('ALIAS', 'MATERIALIZED') "
                            "ORDER BY position", parameters={"db": v.target_db, "t": v.target}).result_rows
        v.keys = [c for c, _, in_key in cols if in_key]
        types = {c: t for c, t, _ in cols}
        out = [r[0] for r in client.query(f"DESCRIBE TABLE ({v.select})").result_rows]
        v.produced = [(c, types[c]) for c in out if c in types]
        for column, ctype, in_key in cols:
            if in_key:
                continue
            m = _AGG.match(ctype)
            if m:
                fn = m.group(2)
                if fn in _NONDETERMINISTIC:
                    continue
                v.values.append((column, f"{fn}({q(column)})" if m.group(1) else f"{fn}Merge({q(column)})"))
            elif "Summing" in v.engine:
                v.values.append((column, f"sum({q(column)})"))
    return sorted((v for v in found if v.engine and v.keys), key=lambda v: (v.depth, v.label, v.name))


def _fingerprint_sql(v: View, source_sql: str, final: bool) -> str:
    """Per partition: how many keys, and a hash over each key with its finalized aggregates. Rows
    are taken to the partition their own values put them in, as an insert does."""
    keys = ", ".join(q(k) for k in v.keys)
    part = v.partition_key or "tuple()"
    rows = f"(SELECT *, toString({part}) AS _p FROM {source_sql})"
    if "Replacing" in v.engine:
        inner = f"SELECT DISTINCT _p, {keys} FROM {rows}"
        hashed = f"cityHash64({keys})"
    else:
        aggs = ", ".join(f"{expr} AS {q('v_' + col)}" for col, expr in v.values)
        inner = f"SELECT _p, {keys}{', ' + aggs if aggs else ''} FROM {rows} GROUP BY _p, {keys}"
        hashed = "cityHash64(" + ", ".join([q(k) for k in v.keys] + [q("v_" + c) for c, _ in v.values]) + ")"
    return (f"SELECT _p, count() AS n, groupBitXor({hashed}) AS h FROM ({inner}) GROUP BY _p"
            + (" SETTINGS final = 1" if final else ""))


def _target_sql(v: View) -> str:
    name = f"{q(v.target_db)}.{q(v.target)}"
    return f"{name} FINAL" if "Replacing" in v.engine else name


def _recomputed_sql(v: View) -> str:
    """The view's query over its whole source, its columns converted as an insert into the target would."""
    cols = ", ".join(f"CAST({q(c)}, {_literal(t)}) AS {q(c)}" for c, t in v.produced)
    return f"(SELECT {cols} FROM ({v.select}))"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fingerprints(client, sql: str) -> dict[str, tuple[int, int]]:
    return {p: (n, h) for p, n, h in client.query(sql).result_rows}


def compare(client, v: View) -> list[Finding]:
    have = _fingerprints(client, _fingerprint_sql(v, _target_sql(v), False))
    want = _fingerprints(client, _fingerprint_sql(v, _recomputed_sql(v), True))
    out = []
    for p in sorted(set(have) | set(want)):
        if have.get(p) != want.get(p):
            out.append(Finding(v.label, p, have.get(p, (0, 0))[0], want.get(p, (0, 0))[0]))
    return out


def repair(client, v: View, partition: str) -> None:
    """Rebuilds one partition of the view's target from its source and swaps it in."""
    target = f"{q(v.target_db)}.{q(v.target)}"
    staging_name = f".check_{v.target}"
    staging = f"{q(v.target_db)}.{q(staging_name)}"
    part = v.partition_key or "tuple()"
    client.command(f"DROP TABLE IF EXISTS {staging}")
    client.command(f"CREATE TABLE {staging} AS {target}")
    try:
        cols = ", ".join(q(c) for c, _ in v.produced)
        client.command(f"INSERT INTO {staging} ({cols}) SELECT {cols} FROM {_recomputed_sql(v)} "
                       f"WHERE toString({part}) = {{p:String}} SETTINGS final = 1", parameters={"p": partition})
        ids = [r[0] for r in client.query(
            f"SELECT DISTINCT _partition_id FROM {staging} UNION DISTINCT "
            f"SELECT DISTINCT _partition_id FROM {target} WHERE toString({part}) = {{p:String}}",
            parameters={"p": partition}).result_rows]
        staged = {r[0] for r in client.query(f"SELECT DISTINCT _partition_id FROM {staging}").result_rows}
        for pid in ids:
            if pid in staged:
                client.command(f"ALTER TABLE {target} REPLACE PARTITION ID {{pid:String}} FROM {staging}",
                               parameters={"pid": pid})
            else:
                client.command(f"ALTER TABLE {target} DROP PARTITION ID {{pid:String}}", parameters={"pid": pid})
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging}")


def check(client, config: Mapping[str, Any], fix: bool = False,
          progress: Callable[[str], None] = lambda line: None) -> list[Finding]:
    """Compares every view-fed table with its source; with ``fix``, rebuilds what differs and
    compares again. Returns every difference found (and whether it was repaired)."""
    findings: list[Finding] = []
    said: set[str] = set()
    for v in views(client, [config["SWARMLENS_OTEL_DATABASE"], config["SWARMLENS_DATABASE"]]):
        if v.unchecked:
            # A table fed by several views, or from a Null table, has no single query to recompute
            # it with; the tables built from it are still checked against it.
            if v.label not in said:
                progress(f"  {v.label:<34} not checked: {v.unchecked}")
                said.add(v.label)
            continue
        started = time.monotonic()
        diffs = compare(client, v)
        if diffs and fix:
            for f in diffs:
                repair(client, v, f.partition)
            again = {f.partition for f in compare(client, v)}
            for f in diffs:
                f.repaired = f.partition not in again
                f.still_differs = f.partition in again
        findings.extend(diffs)
        state = "ok" if not diffs else (f"{len(diffs)} partition(s) differed" +
                                          (f", {sum(f.repaired for f in diffs)} repaired" if fix else ""))
        progress(f"  {v.label:<34} from {v.source_db}.{v.source:<14} {state} ({time.monotonic() - started:.2f} s)")
    return findings
