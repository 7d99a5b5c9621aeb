"""The embedded ClickHouse: chDB served over the ClickHouse HTTP interface.

Clients (clickhouse-connect, the official JS client, mcp-clickhouse, rotel, curl, the reporter)
talk to it as to a ClickHouse server: `GET/POST /?query=`, bodies as SQL or as INSERT data in
any format, `multipart/form-data` with the query, parameters and external data tables as parts,
`param_<name>` typed parameters, settings as URL parameters, `database` (or the
X-ClickHouse-Database header), `default_format`, `session_id`, `query_id`, `readonly`, HTTP
compression both ways, ClickHouse compressed blocks (`decompress=1`, `compress=1`), `/ping`,
the X-ClickHouse-* headers, streamed results with mid-stream exceptions in the server's tagged
format, and ClickHouse's error codes and texts.

This module owns the endpoint as a whole: its settings, the listening socket, the engine, the
confinement layers it starts under, and a clean stop (requests in flight finish, queries still
running are killed, connections close). One concern per module does the rest:

    handler.py     HTTP handling: a connection's requests, routes, authentication, error answers
    request.py     request parsing: URL parameters, forms, external data, the body within its limits
    execution.py   one query from its request to its answer, in order
    sessions.py    sessions and the connection pool
    policy.py      settings, the sandbox's verdict, roles and limits, read-only, access statements
    results.py     results, whole or streamed, their headers and compression
    inserts.py     buffered inserts, retried for the server's failures; external data tables
    cancel.py      running queries by query id, KILL QUERY, cancelling on disconnect

What the endpoint guarantees beyond the engine:

* Isolation. A request without a session sees only its own settings and database: every pooled
  connection is brought to the request's state first, and a connection that a statement changed
  in ways no reset undoes (SET, USE, temporary tables, external data) is closed, not pooled.
* Read-only as a server does it: GET implies readonly=2, `readonly=1/2` are honoured, and the
  engine never sees `readonly` (a chDB connection cannot leave readonly mode once in it).
* A sandbox (see sandbox.py): nothing reaches the host's files, network or programs.
* Inserts are buffered whole before they reach the engine, so a client that disconnects mid-body
  stores nothing and a retried batch is identical to the first (insert deduplication then drops
  it). A valid insert that fails for a reason of the server's (not of the data) is retried here and
  then answered by closing the connection instead of an HTTP error: collectors retry an aborted
  connection with the body intact, while some re-send an empty body after an error status.
* Bounded resources: bodies and decompression are limited while they stream; results stream
  through the engine's streaming API (or a spool file with `wait_end_of_query=1`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import tempfile
import threading
import time

from swarmlens.embedded import access
from swarmlens.embedded.admission import Admission
from swarmlens.embedded.cancel import Registry, kill_quietly
from swarmlens.embedded.engine import Engine
from swarmlens.embedded.handler import Handler, Server
from swarmlens.embedded.sandbox import Policy, Sandbox

log = logging.getLogger(__name__)

# The layers that confine the endpoint (docs/embedded-clickhouse.md): the kernel's Landlock
# restriction of the process, the engine's own settings, the statement check of the engine's parse.
LAYERS = frozenset({"kernel", "engine", "statements"})


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedClickHouse:
    """chDB on a data directory, served over the ClickHouse HTTP interface."""

    def __init__(self, data_dir: str, host: str = "127.0.0.1", port: int = 8123, user: str = "default",
                 password: str = "", pool_size: int = 8, max_body_bytes: int = 1 << 30,
                 max_query_bytes: int = 16 << 20, user_files_path: str = "", cors_origin: str = "",
                 layers: frozenset[str] = LAYERS, confine: bool = False, max_queries_per_user: int = 0,
                 queue_seconds: float = 10.0, raw_db: str = "otel", app_db: str = "swarmlens"):
        if not is_loopback(host) and not password:
            raise ValueError(f"refusing to listen on {host} without a password: set SWARMLENS_CLICKHOUSE_PASSWORD "
                             "or bind to 127.0.0.1")
        self.data_dir = data_dir
        self.host, self.port = host, port
        self.user, self.password = user or "default", password or ""
        self.users = access.Users(os.path.join(data_dir, "access", "users.json"), self.user, self.password,
                                  raw_db=raw_db, app_db=app_db)
        self.pool_size = pool_size
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes
        self.cors_origin = cors_origin
        unknown = set(layers) - LAYERS
        if unknown:
            raise ValueError(f"unknown confinement layers {sorted(unknown)}: choose from {sorted(LAYERS)}")
        self.layers = frozenset(layers)
        self.check_statements = "statements" in self.layers
        # The kernel layer restricts the whole process, so only a process that is the endpoint and
        # nothing else (`swarmlens clickhouse`) asks for it.
        self.confine = confine and "kernel" in self.layers
        self.confinement = None
        self.user_files_path = user_files_path
        self.admission = Admission(max_queries_per_user or max(1, pool_size - 2), queue_seconds)
        self.queue_seconds = queue_seconds
        self.sandbox = Sandbox(Policy(user_files_path=user_files_path))
        self.engine: Engine | None = None
        self.registry: Registry | None = None
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._handlers: dict[Handler, bool] = {}
        self._handlers_lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def version(self) -> str:
        return self.engine.version if self.engine else "?"

    @property
    def timezone(self) -> str:
        return self.engine.timezone if self.engine else "UTC"

    def start(self, background: bool = True) -> "EmbeddedClickHouse":
        # The listening socket is bound first: the kernel layer then denies every bind and connect.
        try:
            self._httpd = Server((self.host, self.port), self)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        try:
            if self.confine:
                from swarmlens.embedded.confine import confine

                os.makedirs(self.data_dir, exist_ok=True)
                scratch = os.path.join(self.data_dir, "tmp")
                os.makedirs(scratch, exist_ok=True)
                os.environ["TMPDIR"] = scratch  # the engine's and this process's temporary files
                tempfile.tempdir = scratch
                writable = [self.data_dir] + ([self.user_files_path] if self.user_files_path else [])
                self.confinement = confine(writable)
                if not self.confinement.enforced:
                    log.warning("kernel confinement: %s", self.confinement.detail)
            self.engine = Engine(self.data_dir, pool_size=self.pool_size, hardened="engine" in self.layers,
                                 acquire_timeout=self.queue_seconds)
        except BaseException:
            self._httpd.server_close()
            self._httpd = None
            raise
        self.registry = Registry()
        self.port = self._httpd.server_address[1]
        if background:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="swarmlens-clickhouse", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> bool:
        """Serves until SIGTERM or SIGINT, then shuts down cleanly."""
        if self._httpd is None:
            self.start(background=False)
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        t = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        while not stop.wait(0.2):
            pass
        # within 10 s in all: 3 s for requests in flight, 2 s for killed ones to answer, 3 s to close
        return self.stop(grace=3.0, idle_grace=0.5, kill_grace=2.0, close_timeout=3.0)

    def stop(self, grace: float = 5.0, idle_grace: float = 1.0, kill_grace: float = 2.0,
             close_timeout: float = 5.0) -> bool:
        """Stops accepting, serves what arrives on open connections for `idle_grace` seconds
        (answering with Connection: close), lets requests in flight finish for up to `grace`
        seconds, then has the engine kill every query still running, gives their requests
        `kill_grace` seconds to answer, closes the remaining connections and the engine. Returns
        False when the engine did not close in time (the caller then ends the process)."""
        if self._httpd is None:
            return True
        self._stopping = True
        self._httpd.shutdown()
        self._httpd.server_close()  # new connections are refused from here on
        self.admission.close()
        busy, idle = self._wait_handlers(grace, idle_grace)
        if busy and self.engine is not None:
            log.info("stopping: killing %d queries still running", len(busy))
            for r in self.registry.snapshot() if self.registry else []:
                r.cancelled.set()
            kill_quietly(self.engine, None)
            busy, idle = self._wait_handlers(kill_grace, 0.0)
        for h in idle + busy:
            h.drop()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self.registry is not None:
            self.registry.close()
        closed = True
        if self.engine is not None:
            closer = threading.Thread(target=self.engine.close, name="swarmlens-clickhouse-close", daemon=True)
            closer.start()
            closer.join(timeout=close_timeout)
            closed = not closer.is_alive()
            if not closed:
                log.error("the engine did not close within %.0f s", close_timeout)
        self._httpd = None
        return closed

    def _wait_handlers(self, grace: float, idle_grace: float):
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            with self._handlers_lock:
                busy = [h for h, b in self._handlers.items() if b]
                idle = [h for h, b in self._handlers.items() if not b]
            if not busy and (not idle or waited >= idle_grace):
                return busy, idle
            if waited >= grace:
                return busy, idle
            time.sleep(0.02)

    def __enter__(self) -> "EmbeddedClickHouse":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _track(self, handler: Handler, busy: bool) -> None:
        with self._handlers_lock:
            self._handlers[handler] = busy

    def _untrack(self, handler: Handler) -> None:
        with self._handlers_lock:
            self._handlers.pop(handler, None)
