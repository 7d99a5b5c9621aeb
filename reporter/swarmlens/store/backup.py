"""Backups of swarmlens' tables through the ClickHouse HTTP interface, and their restore.

The engine's own ``BACKUP ... TO File()/Disk()`` is refused by the embedded endpoint (it keeps the
engine away from files outside its data directory: Code 497, measured), and ``INTO OUTFILE`` too;
so a backup is a consistent export: every MergeTree-family table of both databases, partition by
partition, as ``SELECT * ... FORMAT Native`` streamed over HTTP into a file, with the table's row
count and checksum (``sum(cityHash64(formatRow('RowBinary', ...)))``, order-independent; aggregate states by their finalized value) in
``manifest.json``. While the export runs, the caller holds the receiver's inserts back and merges
are stopped on every table, so the tables do not change under it and the figures match the files.

A restore creates the schema (the migrations), detaches every materialized view (so restoring a
source table fires nothing), stops merges, and for each table truncates it and inserts its files
with ``optimize_on_insert = 0`` and ``insert_deduplicate = 0`` (rows exactly as exported, none
collapsed or dropped as repeats), then compares its count and checksum with the manifest.

Identifiers are typed parameters; partition ids are bound as strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from swarmlens.store.check import q

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

_COLUMNS = ("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position")


@dataclass
class TableFigures:
    database: str
    table: str
    rows: int
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.database}.{self.table}"


def _rows(client, sql: str, params: dict) -> list[dict]:
    raw = client.raw_query(sql, parameters=params, fmt="JSONEachRow")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def tables(client, databases: list[str]) -> list[tuple[str, str]]:
    """Every table that holds data: the MergeTree family (views and Null tables hold none)."""
    return [(r["database"], r["name"]) for r in _rows(
        client, "SELECT database, name FROM system.tables WHERE database IN {dbs:Array(String)} "
                "AND engine LIKE '%MergeTree' ORDER BY database, name", {"dbs": databases})]


def views(client, databases: list[str]) -> list[tuple[str, str]]:
    return [(r["database"], r["name"]) for r in _rows(
        client, "SELECT database, name FROM system.tables WHERE database IN {dbs:Array(String)} "
                "AND engine = 'MaterializedView' ORDER BY database, name", {"dbs": databases})]


def figures(client, database: str, table: str) -> TableFigures:
    """Row count and an order-independent checksum of every row. An aggregate-function state
    (``AggregateFunction(uniqExact, ...)``) enters by its finalized value: the bytes of a state are
    not canonical (a hash set serializes in the order its table was filled, so the same set read
    back and written again can differ), its value is (measured: a restored ``tasks_daily_all``
    whose states hold the same users checksummed differently one run in three)."""
    params: dict[str, Any] = {"db": database, "t": table}
    parts = []
    for n, col in enumerate(_rows(client, _COLUMNS, params)):
        params[f"c{n}"] = col["name"]
        parts.append(f"finalizeAggregation({{c{n}:Identifier}})" if col["type"].startswith("AggregateFunction(")
                     else f"{{c{n}:Identifier}}")
    row = _rows(client, "SELECT count() AS rows, toString(sum(cityHash64(formatRow('RowBinary', "
                        f"{', '.join(parts) or '1'})))) AS checksum FROM {{db:Identifier}}.{{t:Identifier}}", params)[0]
    return TableFigures(database, table, int(row["rows"]), str(row["checksum"]))


def set_merges(client, pairs: list[tuple[str, str]], on: bool) -> None:
    verb = "START" if on else "STOP"
    for db, t in pairs:
        client.command(f"SYSTEM {verb} MERGES {{db:Identifier}}.{{t:Identifier}}", parameters={"db": db, "t": t})


def export(client, databases: list[str], directory: str, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Writes every table of ``databases`` under ``directory`` and returns the manifest (also
    written, last, as manifest.json: a backup without it is incomplete)."""
    pairs = tables(client, databases)
    if not pairs:
        raise ValueError(f"no tables in the databases {' and '.join(databases)}: is it the right server, and has "
                         "`swarmlens db migrate` run?")
    manifest: dict[str, Any] = {"format": FORMAT_VERSION, "databases": databases, "tables": [],
                                "started_at": time.time()}
    set_merges(client, pairs, on=False)
    try:
        for db, t in pairs:
            started = time.monotonic()
            parts = [r["partition_id"] for r in _rows(
                client, "SELECT DISTINCT partition_id FROM system.parts WHERE database = {db:String} "
                        "AND table = {t:String} AND active ORDER BY partition_id", {"db": db, "t": t})]
            folder = os.path.join(directory, db, t)
            os.makedirs(folder, exist_ok=True)
            files = []
            for n, partition in enumerate(parts):
                name = f"{n:05d}.native"
                digest = hashlib.sha256()
                size = 0
                with client.raw_stream("SELECT * FROM {db:Identifier}.{t:Identifier} WHERE _partition_id = {p:String}",
                                       parameters={"db": db, "t": t, "p": partition}, fmt="Native") as stream, \
                        open(os.path.join(folder, name), "wb") as out:
                    for chunk in stream:
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                files.append({"file": name, "partition": partition, "bytes": size, "sha256": digest.hexdigest()})
            fig = figures(client, db, t)
            manifest["tables"].append({"database": db, "table": t, "rows": fig.rows, "checksum": fig.checksum,
                                       "files": files})
            progress(f"  {db}.{t:<34} {fig.rows:>10,} rows in {len(files)} file(s), "
                     f"{sum(f['bytes'] for f in files) / 1e6:.1f} MB ({time.monotonic() - started:.1f} s)")
    finally:
        set_merges(client, pairs, on=True)
    manifest["finished_at"] = time.time()
    write_json(os.path.join(directory, MANIFEST), manifest)
    return manifest


def write_json(path: str, doc: dict) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{directory} holds no {MANIFEST}: not a swarmlens backup, or one that did not finish") \
            from None
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"backup format {manifest.get('format')} is not {FORMAT_VERSION}")
    return manifest


def verify_files(directory: str, manifest: dict) -> list[str]:
    """Files missing or changed since the backup was written."""
    bad = []
    for entry in manifest["tables"]:
        for f in entry["files"]:
            path = os.path.join(directory, entry["database"], entry["table"], f["file"])
            try:
                with open(path, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
            except FileNotFoundError:
                bad.append(f"{path}: missing")
                continue
            if digest != f["sha256"]:
                bad.append(f"{path}: its checksum differs from the one in the manifest")
    return bad


def load(client, directory: str, manifest: dict, progress: Callable[[str], None] = lambda s: None) -> list[str]:
    """Fills the (migrated) tables from the backup; returns the tables whose figures differ from
    the manifest after the load (an empty list: the restore equals its source)."""
    databases = manifest["databases"]
    detached = views(client, databases)
    pairs = [(e["database"], e["table"]) for e in manifest["tables"]]
    for db, v in detached:  # not PERMANENTLY: the next start of the engine attaches them anyway
        client.command("DETACH TABLE {db:Identifier}.{t:Identifier}", parameters={"db": db, "t": v})
    set_merges(client, pairs, on=False)
    differ = []
    try:
        for entry in manifest["tables"]:
            db, t = entry["database"], entry["table"]
            started = time.monotonic()
            client.command("TRUNCATE TABLE {db:Identifier}.{t:Identifier}", parameters={"db": db, "t": t})
            for f in entry["files"]:
                with open(os.path.join(directory, db, t, f["file"]), "rb") as fh:
                    # raw_insert takes the table as text: quoted as an identifier.
                    client.raw_insert(f"{q(db)}.{q(t)}", insert_block=fh, fmt="Native",
                                      settings={"optimize_on_insert": 0, "insert_deduplicate": 0})
            fig = figures(client, db, t)
            same = (fig.rows, fig.checksum) == (int(entry["rows"]), str(entry["checksum"]))
            if not same:
                differ.append(f"{db}.{t}: {fig.rows} rows, checksum {fig.checksum}; the backup has "
                              f"{entry['rows']} rows, checksum {entry['checksum']}")
            progress(f"  {db}.{t:<34} {fig.rows:>10,} rows, {'equal to the backup' if same else 'DIFFERS'} "
                     f"({time.monotonic() - started:.1f} s)")
    finally:
        set_merges(client, pairs, on=True)
        for db, v in detached:
            client.command("ATTACH TABLE {db:Identifier}.{t:Identifier}", parameters={"db": db, "t": v})
    return differ
