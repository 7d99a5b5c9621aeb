"""chDB connections behind the HTTP interface: a pool for sessionless requests, one
connection per HTTP session, and per-request settings applied as a server would.

A chDB connection behaves like a ClickHouse session: `SET`, `USE` and temporary tables are
its own, and queries on different connections run in parallel (the engine releases the
GIL), so a long query never stalls an insert on another connection.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

from swarmlens.embedded.errors import ClickHouseError

# Settings every connection starts with. Inserts are synchronous so that an acknowledged
# insert is on disk; a client's async_insert request is accepted and ignored.
BASE_SETTINGS = {"async_insert": "0", "wait_for_async_insert": "1",
                 # a server's defaults, where chDB (clickhouse-local) differs
                 "implicit_select": "0", "allow_introspection_functions": "0"}
# The engine layer of the confinement: input formats read values, not expressions. With these the
# Values format (INSERT ... VALUES, a Values body, external data, format(Values, ...)) refuses
# `file(...)` or any other function call where a literal belongs; clients send literals there.
HARDENED_SETTINGS = {"input_format_values_interpret_expressions": "0",
                     "input_format_values_deduce_templates_of_expressions": "0"}
IGNORED_SETTINGS = {"async_insert", "wait_for_async_insert", "async_insert_deduplicate",
                    "async_insert_busy_timeout_ms", "async_insert_max_data_size",
                    # enforced by the HTTP layer, never by the engine: a chDB connection cannot leave
                    # readonly mode once in it, and its readonly does not stop INTO OUTFILE
                    "readonly",
                    # each engine connection carries its own, which names its queries for KILL QUERY
                    "log_comment"}
# The engine's own query ids are not the HTTP ones; a connection's log_comment names what runs on it.
TAG_SETTING = "log_comment"

_SET_RE = re.compile(r"^\s*SET\s+(?!ROLE\b)(.+?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_USE_RE = re.compile(r"^\s*USE\s+(`[^`]+`|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)


@dataclass
class Connection:
    conn: object
    settings: dict[str, str] = field(default_factory=dict)  # applied now, beyond the defaults
    baseline: dict[str, str] = field(default_factory=dict)  # set by the session itself with SET
    database: str = "default"  # the database the engine connection is in now
    home: str = "default"  # a session's own database (its USE); a request's `database` is for it alone
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    timeout: float = 60.0
    readonly: int = 0  # a session's own SET readonly, enforced by the HTTP layer
    closed: bool = False  # closed (session closed or expired): a request that still holds it must not use it
    tag: str = ""  # its log_comment: KILL QUERY finds what runs on this connection by it
    current: object = None  # the request's query running on it now, which a kill may target
    kill_lock: threading.Lock = field(default_factory=threading.Lock)
    base: dict[str, str] = field(default_factory=dict)  # what the engine set at open: a reset goes back to it
    locked: frozenset = frozenset()  # the engine layer's settings: no request changes them

    def run_relaxed(self) -> dict[str, str]:
        """The engine layer's settings switched on for one request whose VALUES the statement check
        has read (prepare(relax=True)); the next prepare puts them back."""
        return {k: "1" for k in self.locked}

    def run(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None):
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except Exception as exc:  # chdb raises ChdbError / RuntimeError with the server's text
            raise ClickHouseError.from_engine(exc) from None

    def prepare(self, database: str | None, settings: dict[str, str], relax: bool = False) -> None:
        """Brings the connection to the request's database and settings, issuing only the differences.
        A sessionless request passes database=None for `default`; a session keeps its own. The
        engine layer's settings are never a request's to change (relax=True is the endpoint's own
        decision, for one request)."""
        want = dict(self.baseline)
        want.update({k: v for k, v in settings.items() if k not in IGNORED_SETTINGS and k.lower() not in self.locked})
        if relax:
            want.update(self.run_relaxed())
        for name in [n for n in self.settings if n not in want]:
            # back to what the connection was opened with, which for the engine layer's settings is
            # not the engine's default
            value = self.base.get(name)
            self.run(f"SET {name} = DEFAULT" if value is None else f"SET {name} = {_quote_literal(value)}")
            del self.settings[name]
        changes = {k: v for k, v in want.items() if self.settings.get(k) != v}
        if changes:
            # Names were validated by the caller; values are quoted literals (SET takes no parameters).
            self.run("SET " + ", ".join(f"{k} = {_quote_literal(v)}" for k, v in changes.items()))
            self.settings.update(changes)
        want_db = database or self.home
        if want_db != self.database:
            self.run(f"USE {_quote_ident(want_db)}")
            self.database = want_db

    def note_statement(self, sql: str) -> None:
        """Keeps track of SET / USE a session issued itself, so later requests keep them."""
        m = _USE_RE.match(sql)
        if m:
            self.database = self.home = m.group(1).strip("`\"")
            return
        m = _SET_RE.match(sql)
        if m:
            for part in _split_assignments(m.group(1)):
                name, _, value = part.partition("=")
                name, value = name.strip().lower(), value.strip()
                if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                    value = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
                    if name == "readonly":
                        self.readonly = int(value) if value.isdigit() else self.readonly
                        continue
                    self.baseline[name] = value
                    self.settings[name] = value


def _split_assignments(text: str) -> Iterable[str]:
    part, quote = [], False
    for ch in text:
        if ch == "'":
            quote = not quote
        if ch == "," and not quote:
            yield "".join(part)
            part = []
        else:
            part.append(ch)
    if part:
        yield "".join(part)


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class Engine:
    """The chDB engine on one data directory, shared by every request of the endpoint."""

    def __init__(self, data_dir: str, pool_size: int = 8, max_sessions: int = 512, hardened: bool = True,
                 acquire_timeout: float = 10.0):
        os.makedirs(data_dir, exist_ok=True)
        self._base = dict(BASE_SETTINGS, **(HARDENED_SETTINGS if hardened else {}))
        self._locked = frozenset(HARDENED_SETTINGS) if hardened else frozenset()
        self._tag_prefix = f"swarmlens-{os.getpid()}-{id(self):x}-"
        self._control: Connection | None = None
        self._control_lock = threading.Lock()
        self._opened = 0
        self._tag_lock = threading.Lock()
        self.data_dir = os.path.abspath(data_dir)
        self._path = self.data_dir
        self._pool: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._all: list[Connection] = []
        self._pool_size = max(1, pool_size)
        self._created = 0
        self._lock = threading.Lock()
        self._sessions: dict[str, Connection] = {}
        self._parsers: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._max_sessions = max_sessions
        self._acquire_timeout = acquire_timeout
        self._closed = False
        first = self._new_connection()  # fails fast on a bad or locked data directory
        self.version, self.timezone = first.run("SELECT version(), timezone()", "TSV").bytes().decode().strip().split("\t")
        self._pool.put(first)

    def _open(self) -> Connection:
        # imported here: loading the engine starts its threads, and the endpoint restricts itself
        # (embedded/confine.py) while it has one thread
        import chdb

        c = Connection(chdb.connect(self._path), base=dict(self._base), locked=self._locked)
        with self._tag_lock:  # not self._lock: session() opens connections while holding it
            self._opened += 1
            c.tag = f"{self._tag_prefix}{self._opened}"
        settings = {**self._base, TAG_SETTING: c.tag}
        c.run("SET " + ", ".join(f"{k} = {_quote_literal(v)}" for k, v in settings.items()))
        return c

    # -- cancellation ----------------------------------------------------------------------------
    def kill(self, tags: list[str] | None = None) -> None:
        """Cancels what runs on the connections with these tags (every connection of this engine when
        None) with the engine's own KILL QUERY, which stops a query wherever it is (an aggregate
        mid-block, a sleep, a join, an INSERT ... SELECT) and returns without waiting for it."""
        with self._control_lock:
            if self._control is None:
                self._control = self._open()
            if tags is None:
                self._control.run(f"KILL QUERY WHERE startsWith(Settings['{TAG_SETTING}'], {{p:String}}) ASYNC",
                                  "TabSeparated", {"p": self._tag_prefix})
            elif tags:
                self._control.run(f"KILL QUERY WHERE Settings['{TAG_SETTING}'] IN {{t:Array(String)}} ASYNC",
                                  "TabSeparated", {"t": "[" + ",".join(_quote_literal(t) for t in tags) + "]"})

    def _new_connection(self) -> Connection:
        c = self._open()
        with self._lock:
            self._all.append(c)
            self._created += 1
        return c

    # -- sessionless -------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> Connection:
        if self._closed:
            raise ClickHouseError(210, "NETWORK_ERROR", "Server is shutting down", http_status=503)
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._created < self._pool_size
        if grow:
            return self._new_connection()
        try:
            return self._pool.get(timeout=self._acquire_timeout if timeout is None else timeout)
        except queue.Empty:
            raise ClickHouseError(202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                                  f"Too many simultaneous queries. Maximum: {self._pool_size}") from None

    def release(self, c: Connection, discard: bool = False) -> None:
        """Returns a sessionless connection to the pool, or closes it when the request changed it in
        ways no reset undoes (SET, USE, temporary tables): the next request gets a fresh one."""
        if discard or self._closed:
            _close_quietly(c)
            with self._lock:
                if c in self._all:
                    self._all.remove(c)
                    self._created -= 1
            return
        c.last_used = time.monotonic()
        self._pool.put(c)

    # -- parsing ---------------------------------------------------------------------------------
    def parse(self, fn):
        """Runs fn(connection) on a connection that no request's settings ever touch, so that how a
        statement is parsed and printed cannot be changed by the request being judged."""
        try:
            c = self._parsers.get_nowait()
        except queue.Empty:
            c = self._open()
        try:
            return fn(c)
        finally:
            self._parsers.put(c)

    # -- HTTP sessions -----------------------------------------------------------------------
    def session(self, session_id: str, timeout: float, check: bool) -> Connection:
        self._expire_sessions()
        with self._lock:
            c = self._sessions.get(session_id)
            if c is None:
                if check:
                    raise ClickHouseError(372, "SESSION_NOT_FOUND", f"Session {session_id.partition(chr(0))[0]} not found")
                if len(self._sessions) >= self._max_sessions:
                    raise ClickHouseError(202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                                          f"Too many open sessions. Maximum: {self._max_sessions}")
                c = self._open()
                self._sessions[session_id] = c
            c.timeout = timeout
            c.last_used = time.monotonic()
            return c

    def close_session(self, session_id: str, conn: Connection | None = None) -> None:
        """Closes a session (only `conn`, when given: never a newer session of the same id)."""
        with self._lock:
            c = self._sessions.get(session_id)
            if c is None or (conn is not None and c is not conn):
                return
            del self._sessions[session_id]
        _close_quietly(c)

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [(sid, c) for sid, c in self._sessions.items()
                     if now - c.last_used > c.timeout and not c.lock.locked()]
            for sid, _ in stale:
                del self._sessions[sid]
        for _, c in stale:
            _close_quietly(c)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                _close_quietly(self._parsers.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            conns = list(self._all) + list(self._sessions.values())
            if self._control is not None:
                conns.append(self._control)
                self._control = None
            self._sessions.clear()
            self._all.clear()
        for c in conns:
            with c.lock:
                _close_quietly(c)


def _close_quietly(c: Connection) -> None:
    c.closed = True
    try:
        c.conn.close()
    except Exception:
        pass
