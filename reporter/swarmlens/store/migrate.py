"""Versioned schema migrations, run over the ClickHouse HTTP interface.

Each file ``schema/NNNN_name.sql`` is one migration, applied once, in version order, and recorded
with the SHA-256 of its text in ``{SWARMLENS_DATABASE}.schema_migrations``. Running ``migrate`` again
applies only what is missing, so it is safe at every start. Every statement is written to be
idempotent as well (``IF NOT EXISTS``, ``MODIFY SETTING``), so two processes starting at once, or a
migration interrupted half way, end in the same schema when run again. A file changed after it was
applied is an error: write a new migration instead.

The runner uses nothing but a clickhouse-connect client, so it works the same against the embedded
endpoint and a real server. HTTP takes one statement per request: files are split on ``;`` outside
of quotes and comments.

Template syntax
---------------

Migrations are plain SQL with a few ``{{...}}`` placeholders. They only ever produce identifiers,
engine clauses and the TTL clause, never values, and the names they take are checked against
``[A-Za-z_][A-Za-z0-9_]*``.

``{{otel}}``, ``{{db}}``
    The raw-span database (SWARMLENS_OTEL_DATABASE) and swarmlens' database (SWARMLENS_DATABASE),
    quoted.
``{{on_cluster}}``
    ``ON CLUSTER `name``` when SWARMLENS_CLUSTER is set, else nothing.
``{{local NAME}}``
    The table that holds the rows of NAME: ``NAME`` on a single server, ``NAME_local`` on a cluster,
    where ``{{distributed ...}}`` puts a Distributed table called NAME on top of it.
``{{engine ENGINE(args)}}``
    A MergeTree-family engine. On a cluster it becomes its Replicated twin, one replica set per
    shard: ``ReplicatedENGINE('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', args)``.
``{{engine_everywhere ENGINE(args)}}``
    Like ``engine``, but on a cluster the replica path has no ``{shard}``, so every node of the
    cluster holds all rows. For small tables the reporter writes and joins with (configuration,
    feedback).
``{{distributed DBKEY NAME SHARDING_EXPR}}``
    A whole statement: on a cluster, ``CREATE TABLE IF NOT EXISTS {DBKEY}.NAME ON CLUSTER ... AS
    {DBKEY}.NAME_local ENGINE = Distributed(...)``, where DBKEY is ``otel`` or ``db``; on a single
    server, nothing (the statement is skipped).
``{{ttl EXPR}}``
    ``TTL EXPR + toIntervalDay(N)`` when SWARMLENS_TRACES_TTL_DAYS is N > 0, else nothing.

The ClickHouse macros ``{shard}``, ``{replica}``, ``{database}`` and ``{table}`` (single braces)
are left for the server to expand.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Mapping

from swarmlens.sqltext import split_statements
from swarmlens.store.client import MigrationError, QueryError, connect, raise_as_store_error

# Text indexes (and the contrib exporter's schema that uses them) need ClickHouse 26.2.
MIN_SERVER_VERSION = (26, 2)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)((?:\s+[^{}]*?)?)\s*\}\}")
_ENGINE = re.compile(r"^(\w*MergeTree)\s*\((.*)\)$", re.S)


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Target:
    """Where and how a schema is rendered: database names, optional cluster, raw-span TTL."""

    otel_database: str = "otel"
    database: str = "swarmlens"
    cluster: str = ""
    traces_ttl_days: int = 0

    def __post_init__(self) -> None:
        for label, name in (("otel database", self.otel_database), ("database", self.database)):
            if not _NAME.match(name or ""):
                raise MigrationError(f"invalid {label} name {name!r}: use letters, digits and _")
        if self.cluster and not _NAME.match(self.cluster):
            raise MigrationError(f"invalid cluster name {self.cluster!r}: use letters, digits and _")
        if int(self.traces_ttl_days) < 0:
            raise MigrationError("SWARMLENS_TRACES_TTL_DAYS must be 0 (keep forever) or more")

    @classmethod
    def from_config(cls, config: Mapping) -> "Target":
        return cls(otel_database=config["SWARMLENS_OTEL_DATABASE"], database=config["SWARMLENS_DATABASE"],
                   cluster=config.get("SWARMLENS_CLUSTER") or "",
                   traces_ttl_days=int(config.get("SWARMLENS_TRACES_TTL_DAYS") or 0))


def _quote(name: str) -> str:
    return f"`{name}`"


def _replicated(engine: str, path: str) -> str:
    m = _ENGINE.match(engine.strip())
    if not m:
        raise MigrationError(f"not a MergeTree-family engine: {engine!r}")
    family, args = m.group(1), m.group(2).strip()
    params = [f"'{path}'", "'{replica}'"] + ([args] if args else [])
    return f"Replicated{family}({', '.join(params)})"


def render(sql: str, target: Target) -> str:
    """Expands the ``{{...}}`` placeholders of a migration (see the module docstring)."""
    cluster = target.cluster
    dbs = {"otel": target.otel_database, "db": target.database}

    def one(m: re.Match) -> str:
        word, arg = m.group(1), m.group(2).strip()
        if word in dbs and not arg:
            return _quote(dbs[word])
        if word == "on_cluster" and not arg:
            return f"ON CLUSTER {_quote(cluster)}" if cluster else ""
        if word == "local" and _NAME.match(arg):
            return f"{arg}_local" if cluster else arg
        if word == "engine" and arg:
            return _replicated(arg, "/clickhouse/tables/{shard}/{database}/{table}") if cluster else arg
        if word == "engine_everywhere" and arg:
            return _replicated(arg, "/clickhouse/tables/all/{database}/{table}") if cluster else arg
        if word == "ttl" and arg:
            days = int(target.traces_ttl_days)
            return f"TTL {arg} + toIntervalDay({days})" if days > 0 else ""
        if word == "distributed":
            parts = arg.split(None, 2)
            if len(parts) != 3 or parts[0] not in dbs or not _NAME.match(parts[1]):
                raise MigrationError(f"bad placeholder {m.group(0)!r}: use {{{{distributed otel|db NAME EXPR}}}}")
            if not cluster:
                return ""
            db, name, key = _quote(dbs[parts[0]]), parts[1], parts[2]
            return (f"CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER {_quote(cluster)} AS {db}.{name}_local\n"
                    f"ENGINE = Distributed({_quote(cluster)}, {db}, {name}_local, {key})")
        raise MigrationError(f"unknown placeholder {m.group(0)!r}")

    return _PLACEHOLDER.sub(one, sql)


# ---------------------------------------------------------------------------------------------
# Migrations on disk


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str = field(repr=False)
    checksum: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", hashlib.sha256(self.text.encode()).hexdigest())

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, target: Target) -> list[str]:
        return split_statements(render(self.text, target))


def load_migrations(directory: str | Path | None = None) -> list[Migration]:
    """Reads every ``NNNN_name.sql`` of the schema directory, in version order."""
    if directory is None:
        files = [(p.name, p.read_text(encoding="utf-8"))
                 for p in resources.files("swarmlens.store").joinpath("schema").iterdir() if p.name.endswith(".sql")]
    else:
        files = [(p.name, p.read_text(encoding="utf-8")) for p in Path(directory).glob("*.sql")]
    migrations: dict[int, Migration] = {}
    for filename, text in files:
        m = _FILE.match(filename)
        if not m:
            raise MigrationError(f"schema file {filename!r} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in migrations:
            raise MigrationError(f"two schema files have version {version:04d}")
        migrations[version] = Migration(version, m.group(2), text)
    return [migrations[v] for v in sorted(migrations)]


# The ledger itself, created before any migration runs.
_BOOTSTRAP = """
CREATE DATABASE IF NOT EXISTS {{db}} {{on_cluster}};
CREATE TABLE IF NOT EXISTS {{db}}.schema_migrations {{on_cluster}} (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    duration_ms UInt64,
    statements UInt32
) ENGINE = {{engine_everywhere ReplacingMergeTree(applied_at)}}
ORDER BY version;
"""


def bootstrap_statements(target: Target) -> list[str]:
    return split_statements(render(_BOOTSTRAP, target))


def render_all(target: Target, migrations: Iterable[Migration] | None = None) -> str:
    """The whole schema as one SQL script, as ``swarmlens db migrate --dry-run`` prints it."""
    out = ["-- bootstrap: the migration ledger"]
    out += [s + ";" for s in bootstrap_statements(target)]
    for mig in migrations if migrations is not None else load_migrations():
        out.append(f"\n-- {mig.label} (sha256 {mig.checksum[:12]})")
        out += [s + ";\n" for s in mig.statements(target)]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: object


@dataclass
class MigrationStatus:
    migration: Migration
    applied: AppliedMigration | None

    @property
    def state(self) -> str:
        if self.applied is None:
            return "pending"
        return "applied" if self.applied.checksum == self.migration.checksum else "changed"


def _check_server(client) -> None:
    version = client.server_version or ""
    try:
        found = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return  # an unusual version string: let the DDL itself decide
    if found < MIN_SERVER_VERSION:
        raise MigrationError(f"ClickHouse {version} is too old: swarmlens' schema needs "
                             f"{'.'.join(map(str, MIN_SERVER_VERSION))} or newer (text indexes)")


def _applied(client, target: Target) -> dict[int, AppliedMigration]:
    rows = client.query(
        "SELECT version, argMax(name, applied_at), argMax(checksum, applied_at), max(applied_at) "
        "FROM {db:Identifier}.schema_migrations GROUP BY version ORDER BY version",
        parameters={"db": target.database}).result_rows
    return {int(v): AppliedMigration(int(v), n, c, t) for v, n, c, t in rows}


def status(client, target: Target, migrations: list[Migration] | None = None) -> list[MigrationStatus]:
    """Each migration with its applied record, if any. Needs the ledger to exist (run ``migrate``)."""
    migrations = load_migrations() if migrations is None else migrations
    exists = client.query("SELECT count() FROM system.tables WHERE database = {db:String} "
                          "AND name = 'schema_migrations'", parameters={"db": target.database}).result_rows[0][0]
    applied = _applied(client, target) if exists else {}
    return [MigrationStatus(m, applied.get(m.version)) for m in migrations]


def migrate(client, target: Target, migrations: list[Migration] | None = None,
            progress: Callable[[str], None] | None = None) -> list[Migration]:
    """Applies every pending migration in order and returns those it applied.

    Raises MigrationError when an applied migration's file changed since, or when a statement
    fails (naming the migration and the statement); migrations applied before that stay recorded.
    """
    say = progress or (lambda line: None)
    migrations = load_migrations() if migrations is None else migrations
    _check_server(client)
    for sql in bootstrap_statements(target):
        _run(client, sql, "bootstrap")
    applied = _applied(client, target)
    for m in migrations:
        record = applied.get(m.version)
        if record is not None and record.checksum != m.checksum:
            raise MigrationError(f"migration {m.label} changed after it was applied (recorded sha256 "
                                 f"{record.checksum[:12]}, file {m.checksum[:12]}): add a new migration instead")
    done: list[Migration] = []
    pending = [m for m in migrations if m.version not in applied]
    for m in migrations:
        if m.version in applied:
            say(f"  {m.label:<40} already applied")
    for m in pending:
        started = time.monotonic()
        statements = m.statements(target)
        for i, sql in enumerate(statements, 1):
            _run(client, sql, f"{m.label}, statement {i} of {len(statements)}")
        elapsed_ms = int((time.monotonic() - started) * 1000)
        client.insert("schema_migrations", [[m.version, m.name, m.checksum, elapsed_ms, len(statements)]],
                      column_names=["version", "name", "checksum", "duration_ms", "statements"],
                      database=target.database)
        done.append(m)
        say(f"  {m.label:<40} applied: {len(statements)} statements in {elapsed_ms / 1000:.2f} s")
    return done


def _run(client, sql: str, where: str) -> None:
    try:
        client.command(sql)
    except Exception as exc:  # clickhouse-connect raises several classes; report them the same way
        try:
            raise_as_store_error(exc)
        except QueryError as err:
            first = " ".join(sql.split())[:160]
            raise MigrationError(f"{where} failed: {err}\n  statement: {first}...", code=err.code) from exc


def migrate_from_config(config: Mapping, progress: Callable[[str], None] | None = None) -> list[Migration]:
    """Connects with the config's URL and credentials and migrates; what `swarmlens db migrate` and
    `swarmlens up` run."""
    client = connect(config)
    try:
        return migrate(client, Target.from_config(config), progress=progress)
    finally:
        client.close()
