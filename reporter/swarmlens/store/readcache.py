"""Reuse of read results while the data they came from has not changed.

A reporter page runs 2 to 14 queries; on the two cores of a small machine most of a page's time is
the engine's fixed cost per query (planning, parts, joins), not the rows. Many requests ask the
same questions: everyone on the ops dashboard, a user's page reloaded, the sign-in check of every
request. So a GET request first takes one cheap *version* of the data, probed after the request began (from ``system.parts``: per
partition of every table in swarmlens' two databases, the newest block number or mutation it
holds), and a read-only query whose text, parameters, settings and version match a stored one is
answered from memory instead of the server. A query file names its tables (``{db:Identifier}.tasks``),
so its result is keyed on the versions of those tables only: the spans of a new task change the
raw spans and the rollups, not the accounts, prices, plans or votes. Requests that miss the same
result at once wait for the first of them, so a change of the data costs one computation per
result, not one per reader.

Why this is exact, not a time-to-live cache: an insert, a mutation (ALTER UPDATE/DELETE, a
lightweight DELETE), DROP PARTITION or TRUNCATE on a MergeTree table changes its entry, and so the
version; a background merge does not (it keeps the blocks and mutations it merged), and neither
does an insert the server deduplicated, which changed nothing. Plain MergeTree tables (the raw
spans) add their row counts, which only a TTL lowers. The probe runs before the request's queries,
so a result stored under a version is at least as new as that version. What the version does not
see is the clock: a query that reads ``today()`` (the filter menus' "last 90 days") could outlive
midnight, so no result is reused after SWARMLENS_REPORTER_CACHE_SECONDS. Tables of other engines
(Memory, Log, dictionaries...) have no parts to watch: if either database holds one, reuse stays
off in this process.

Only GET and HEAD requests of the reporter use it (the web layer opens a ``Snapshot`` for each);
writes, the CLI, the notifier and ``swarmlens db check`` always ask the server. Each result is kept
pickled, so no caller can change another's rows, and the memory it takes is counted exactly:
SWARMLENS_REPORTER_CACHE_BYTES per reporter process, the least recently used dropped first;
0 turns reuse off.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import pickle
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping

log = logging.getLogger(__name__)

# Per partition of every table: the newest block number or mutation it holds. An insert or a
# mutation (ALTER UPDATE/DELETE, a lightweight DELETE) raises it; a merge keeps it (a merged part
# covers its sources' blocks and keeps their highest mutation), so background merges do not count
# as changes. DROP PARTITION and TRUNCATE take the partition's entry away. Rows are counted too
# for plain MergeTree tables, where only a TTL removes them (merges of Replacing, Summing and
# Aggregating tables fold rows without changing what a query over them reads).
# The parts are read as they are and folded here: the server's GROUP BY over system.parts cost
# more than the rows it would save (5.6 against 3.1 ms a probe with 270 parts).
VERSION_SQL = ("SELECT database, table, partition_id, max_block_number, data_version, rows "
               "FROM system.parts WHERE active AND database IN ({db:String}, {otel:String})")
# Engines whose data lives in parts; views and Null tables (a view's input) hold none.
TABLES_SQL = ("SELECT database, name, engine FROM system.tables WHERE database IN ({db:String}, {otel:String}) "
              "AND engine NOT IN ('MaterializedView', 'View', 'Null')")

# How query files name tables: {db:Identifier}.tasks, {otel:Identifier}.otel_traces.
_TABLE_REF = re.compile(r"\{(db|otel):Identifier\}\.`?([A-Za-z_][A-Za-z0-9_]*)")
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_READ = re.compile(r"(?:SELECT|WITH)\b", re.IGNORECASE)


# The texts are the package's query files, a few dozen: each is looked at once, not per request.
@functools.lru_cache(maxsize=512)
def is_read(sql: str) -> bool:
    """A statement that only reads: its first word, after comments, is SELECT or WITH."""
    return bool(_READ.match(sql, _LEADING.match(sql).end()))


@functools.lru_cache(maxsize=512)
def _table_refs(sql: str) -> tuple[frozenset[tuple[str, str]], bool]:
    """The ({db|otel}, table) names a query file reads, and whether it reads system tables."""
    return frozenset(_TABLE_REF.findall(sql)), "FROM system." in sql or "JOIN system." in sql


class ReadCache:
    """Results of read-only queries by (statement, parameters, options), each kept with the data
    version it was read at. One per reporter process; thread-safe."""

    wait_seconds = 60.0  # longest a request waits for a probe or a result another one is computing

    def __init__(self, max_bytes: int, max_age_seconds: float):
        self.max_bytes = max(0, int(max_bytes))
        self.max_age = float(max_age_seconds)
        # One result is at most an eighth of the whole, so one large report cannot empty the cache.
        self.max_entry_bytes = self.max_bytes // 8
        self._entries: OrderedDict[Any, tuple[Any, float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._watchable: bool | None = None  # unknown until the first probe
        self._plain: frozenset[str] = frozenset()  # plain MergeTree tables, whose row counts are part of the version
        self._watched: frozenset[str] = frozenset()  # "database.table" of every table with parts
        self._inflight: dict[Any, Any] = {}  # (key, version) -> Future of the one request computing it
        self._probes: list[tuple[float, Any]] = []  # (start, Future) of the probes under way
        self._recent: tuple[float, Any] | None = None  # (start, version) of the newest finished probe
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self._watchable is not False

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, "hits": self.hits, "misses": self.misses}

    def version_since(self, client, config: Mapping[str, Any], since: float) -> "DataVersion | None":
        """A data version probed no earlier than ``since`` (time.monotonic()), so it sees every
        write that ended before then; None when results cannot be reused. Requests that began
        before a probe started share it, so a busy process probes a few times per probe's
        duration, not once per request."""
        from concurrent.futures import Future

        with self._lock:
            if self._recent is not None and self._recent[0] >= since:
                return self._recent[1]
            joined = next((f for started, f in self._probes if started >= since), None)
            if joined is None:
                started, own = time.monotonic(), Future()
                self._probes.append((started, own))
        if joined is not None:
            try:
                return joined.result(timeout=self.wait_seconds)
            except Exception:
                return None
        version = None
        try:
            version = self.version(client, config)
        finally:
            with self._lock:
                self._probes.remove((started, own))
                if version is not None and (self._recent is None or self._recent[0] < started):
                    self._recent = (started, version)
            own.set_result(version)
        return version

    def version(self, client, config: Mapping[str, Any]) -> "DataVersion | None":
        """The data version now, or None when results cannot be reused (reuse is off, a table
        of another engine, or the server would not tell)."""
        if not self.enabled:
            return None
        params = {"db": config["SWARMLENS_DATABASE"], "otel": config["SWARMLENS_OTEL_DATABASE"]}
        try:
            if self._watchable is None:
                tables = client.query(TABLES_SQL, parameters=params).result_rows
                unwatched = [f"{d}.{n} ({e})" for d, n, e in tables if not e.endswith("MergeTree")]
                if unwatched:
                    log.warning("query results are not reused: %s keep data outside MergeTree parts",
                                ", ".join(unwatched[:5]))
                self._plain = frozenset(f"{d}.{n}" for d, n, e in tables if e == "MergeTree")
                self._watched = frozenset(f"{d}.{n}" for d, n, e in tables if e.endswith("MergeTree"))
                self._watchable = not unwatched
                if unwatched:
                    return None
            rows = client.query(VERSION_SQL, parameters=params).result_rows
        except Exception as exc:  # no access to system tables, or the server is down: ask it directly
            log.debug("no data version (%s); this request reads from the server", exc)
            return None
        return DataVersion.of_parts(rows, self._plain)

    def tables_of(self, sql: str, config: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The tables a query file reads, or None when that is not known for sure (a table named
        another way, or a view over other tables): then the query is keyed on every table."""
        refs, reads_system = _table_refs(sql)
        names = {"db": config["SWARMLENS_DATABASE"], "otel": config["SWARMLENS_OTEL_DATABASE"]}
        found = {f"{names[kind]}.{table}" for kind, table in refs}
        if not found or not found <= self._watched or reads_system:
            return None
        return tuple(sorted(found))

    def join_flight(self, key: Any, version: Any):
        """(True, future) for the request that computes a result, (False, future) for the others."""
        from concurrent.futures import Future

        with self._lock:
            flight = self._inflight.get((key, version))
            if flight is not None:
                return False, flight
            flight = self._inflight[(key, version)] = Future()
            return True, flight

    def end_flight(self, key: Any, version: Any, flight, exc: BaseException | None) -> None:
        with self._lock:
            self._inflight.pop((key, version), None)
        if exc is None:
            flight.set_result(None)
        else:
            flight.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))

    def get(self, key: Any, version: Any):
        from clickhouse_connect.driver.query import QueryResult

        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version or now - entry[1] > self.max_age:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            blob = entry[2]
        names, rows = pickle.loads(blob)
        return QueryResult(result_set=rows, column_names=names)

    def put(self, key: Any, version: Any, result) -> None:
        try:
            blob = pickle.dumps((tuple(result.column_names), result.result_rows), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a value pickle cannot keep: not reused
            return
        size = len(blob) + 200  # the key and the bookkeeping, roughly
        if size > self.max_entry_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2]) + 200
            self._entries[key] = (version, time.monotonic(), blob)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped[2]) + 200


class DataVersion:
    """Per table ("database.table"), its partitions with their newest blocks and mutations (and rows)."""

    __slots__ = ("tables", "_all")

    def __init__(self, tables: dict[str, Any]):
        self.tables = tables
        self._all = tuple(sorted(tables.items()))

    @classmethod
    def of_parts(cls, parts, plain: frozenset[str]) -> "DataVersion":
        """From the active parts (database, table, partition, max block, data version, rows): per
        table, each partition's newest block or mutation, and its row count for plain MergeTree
        tables. Kept as they are (sorted), not hashed, so two versions are equal only when they are."""
        newest: dict[tuple[str, str], list[int]] = {}
        for database, table, partition, max_block, data_version, rows in parts:
            entry = newest.setdefault((f"{database}.{table}", partition), [0, 0])
            entry[0] = max(entry[0], int(max_block), int(data_version))
            entry[1] += int(rows)
        tables: dict[str, list[tuple[str, int, int]]] = {}
        for (name, partition), (block, rows) in newest.items():
            tables.setdefault(name, []).append((partition, block, rows if name in plain else 0))
        return cls({name: tuple(sorted(parts_of)) for name, parts_of in tables.items()})

    def of(self, names: tuple[str, ...] | None) -> tuple:
        """The part of the version a query reading ``names`` depends on (all of it for None); a
        table without parts counts as 0, so its first insert changes the key."""
        if names is None:
            return ("*", self._all)
        return tuple((n, self.tables.get(n, 0)) for n in names)

    def __eq__(self, other) -> bool:
        return isinstance(other, DataVersion) and self._all == other._all

    def __hash__(self) -> int:
        return hash(self._all)


class Snapshot:
    """One GET request's view of the cache: the data version is probed once, by the first query of
    the request, and shared by every query of it (also those run side by side in other threads)."""

    def __init__(self, cache: ReadCache, config: Mapping[str, Any]):
        self.cache = cache
        self.config = config
        self.began = time.monotonic()
        self._version: Any = ...
        self._lock = threading.Lock()

    def version(self, client) -> Any:
        with self._lock:
            if self._version is ...:
                self._version = self.cache.version_since(client, self.config, self.began)
            return self._version


_current: contextvars.ContextVar[Snapshot | None] = contextvars.ContextVar("swarmlens_read_snapshot", default=None)


def begin(snapshot: Snapshot | None) -> contextvars.Token:
    return _current.set(snapshot)


def end(token: contextvars.Token) -> None:
    _current.reset(token)


def cached_query(client, sql: str, params: Mapping[str, Any], kwargs: Mapping[str, Any], run):
    """``run()`` (the query itself), or its stored result when the request has a snapshot, the
    statement only reads and nothing it read has changed since."""
    snap = _current.get()
    if snap is None or not snap.cache.enabled or not is_read(sql):
        return run()
    data = snap.version(client)
    if data is None:
        return run()
    cache = snap.cache
    # Keyed on the versions of the tables the query reads only: an insert into the raw spans and
    # today's rollups leaves the sign-in check, prices, plans and votes reusable.
    version = data.of(cache.tables_of(sql, snap.config))
    key = (sql, repr(sorted(params.items())), repr(sorted(kwargs.items())))
    hit = cache.get(key, version)
    if hit is not None:
        return hit
    # One computation per result: the requests that miss the same result at the same version
    # (after each insert, every reader of a busy page does) wait for the first one's answer
    # instead of all asking the server at once.
    leader, flight = cache.join_flight(key, version)
    if not leader:
        try:
            flight.result(timeout=cache.wait_seconds)
        except Exception:  # the first one failed or took too long: ask the server ourselves
            return run()
        hit = cache.get(key, version)
        return hit if hit is not None else run()
    try:
        result = run()
    except BaseException as exc:
        cache.end_flight(key, version, flight, exc)
        raise
    cache.put(key, version, result)
    cache.end_flight(key, version, flight, None)
    return result
