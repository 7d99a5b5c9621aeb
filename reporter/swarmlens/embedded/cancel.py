"""Cancellation: the running queries by HTTP query id, KILL QUERY, and cancelling on disconnect.

Owns the registry of running queries (Code 216 for a query id in use, `replace_running_query`),
the KILL QUERY statement evaluated over that registry, the thread that cancels a read whose client
went away, and the engine's kill of a query, which never touches the request's own connection.
The connection timeouts (idle keep-alive, a client stalling mid-request) are the HTTP layer's.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from swarmlens import sqltext
from swarmlens.embedded.engine import Connection, Engine
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.sandbox import Statement, escape_param

log = logging.getLogger(__name__)


@dataclass
class Running:
    query_id: str
    user: str
    query: str
    started: float
    sock: socket.socket
    watch: bool  # cancel when the client disconnects (a read whose result nobody can receive)
    engine: Engine | None = None
    conn: Connection | None = None  # the engine connection it runs on, whose tag KILL QUERY finds
    stream: object = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Asks the engine to stop the query, from any thread, without waiting for it: the engine's
        KILL QUERY runs on a connection of its own and the request's thread sees its query end with
        Code 394. It never touches the request's engine connection (not thread-safe)."""
        if self.cancelled.is_set():
            return
        self.cancelled.set()
        if self.engine is not None and self.conn is not None:
            threading.Thread(target=self._kill, name="swarmlens-clickhouse-kill", daemon=True).start()

    def _kill(self) -> None:
        conn = self.conn
        # Under the connection's kill lock, which the request takes to let go of the connection: the
        # kill can never reach a later query that reuses the connection.
        with conn.kill_lock:
            if conn.current is self:
                kill_quietly(self.engine, [conn.tag])


def kill_quietly(engine: Engine, tags: list[str] | None) -> None:
    try:
        engine.kill(tags)
    except Exception as exc:
        log.warning("KILL QUERY failed: %s", str(exc)[:300])


class Registry:
    """Running queries by HTTP query id: Code 216 for a reused id, KILL QUERY, cancel on disconnect."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Running] = {}
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="swarmlens-clickhouse-watch", daemon=True)
        self._watcher.start()

    def add(self, r: Running, replace: bool) -> None:
        with self._lock:
            old = self._running.get(r.query_id)
            if old is not None and not replace:
                raise ClickHouseError(216, "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
                                      f"Query with id = {r.query_id} is already running")
            self._running[r.query_id] = r
        if old is not None:
            old.cancel()

    def remove(self, r: Running) -> None:
        with self._lock:
            if self._running.get(r.query_id) is r:
                del self._running[r.query_id]
        r.done.set()

    def snapshot(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            watched = [r for r in self.snapshot() if r.watch and not r.cancelled.is_set()]
            if not watched:
                continue
            try:
                readable, _, _ = select.select([r.sock for r in watched], [], [], 0)
            except (OSError, ValueError):
                readable = [r.sock for r in watched if r.sock.fileno() < 0]
            for r in watched:
                if r.sock not in readable:
                    continue
                try:
                    gone = r.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    log.info("client of query %s disconnected; cancelling it", r.query_id)
                    r.cancel()


def kill_queries(out, ep, who, query_id: str, conn: Connection, st: Statement, fmt: str, qparams) -> None:
    """KILL QUERY against the endpoint's running queries, which carry the HTTP query ids: the WHERE
    clause is evaluated by the engine over a table of them. `out` answers (results.Results)."""
    toks = list(sqltext.tokens(st.canonical))
    where = next((t for t in toks if t[0] == "WHERE" and t[3] == 0), None)
    if where is None:
        raise ClickHouseError(62, "SYNTAX_ERROR", "KILL QUERY needs a WHERE clause")
    end = len(st.canonical)
    mode = "SYNC" if any(t[0] == "SYNC" and t[3] == 0 for t in toks) else \
        "TEST" if any(t[0] == "TEST" and t[3] == 0 for t in toks) else "ASYNC"
    for word, start, _, depth in toks:
        if depth == 0 and start > where[2] and word in ("SYNC", "ASYNC", "TEST", "FORMAT", "ON"):
            end = min(end, start)
    cond = st.canonical[where[2]:end].strip()
    # a user's own queries; an admin's KILL reaches everyone's
    mine = [r for r in ep.registry.snapshot() if r.query_id != query_id
            and (who.admin or r.user == who.name)]
    rows = "\n".join(json.dumps({"query_id": r.query_id, "user": r.user, "query": r.query,
                                 "elapsed": time.time() - r.started}) for r in mine)
    select_sql = ("SELECT query_id FROM format(JSONEachRow, 'query_id String, user String, query String, "
                  f"elapsed Float64', {{__kill_rows:String}}) WHERE {cond}")
    kp = {**qparams, "__kill_rows": escape_param(rows)}
    ep.sandbox.inspect(ep.engine, select_sql, kp).check()
    ids = conn.run(select_sql, "TabSeparatedRaw", kp).bytes().decode().split("\n")
    ids = {i for i in ids if i}
    matched = [r for r in mine if r.query_id in ids]
    status = {"SYNC": "finished", "ASYNC": "waiting", "TEST": "waiting"}[mode]
    for r in matched:
        if mode == "TEST":
            continue
        r.cancel()
    if mode == "SYNC":
        deadline = time.monotonic() + 30
        for r in matched:
            r.done.wait(max(0.0, deadline - time.monotonic()))
    out_rows = "\n".join(json.dumps({"kill_status": status, "query_id": r.query_id, "user": r.user,
                                     "query": r.query}) for r in matched)
    result = conn.run("SELECT * FROM format(JSONEachRow, 'kill_status String, query_id String, user String, "
                      "query String', {__kill_rows:String})", fmt, {"__kill_rows": escape_param(out_rows)})
    data = bytes(result.bytes())
    out.send_whole(data, fmt, out.headers(fmt, len(matched), len(data), 0))
