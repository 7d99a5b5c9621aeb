"""The embedded ClickHouse: chDB served over the ClickHouse HTTP interface.

Clients (clickhouse-connect, the official JS client, mcp-clickhouse, rotel, curl, the reporter)
talk to it as to a ClickHouse server: `GET/POST /?query=`, bodies as SQL or as INSERT data in
any format, `multipart/form-data` with the query, parameters and external data tables as parts,
`param_<name>` typed parameters, settings as URL parameters, `database` (or the
X-ClickHouse-Database header), `default_format`, `session_id`, `query_id`, `readonly`, HTTP
compression both ways, ClickHouse compressed blocks (`decompress=1`, `compress=1`), `/ping`,
the X-ClickHouse-* headers, streamed results with mid-stream exceptions in the server's tagged
format, and ClickHouse's error codes and texts.

HTTP framing (request parsing, chunked bodies, keep-alive, chunked responses) is h11's; this
module keeps only what no library does: the ClickHouse semantics.

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

import base64
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import h11

from swarmlens import sqltext
from swarmlens.embedded import access, codecs
from swarmlens.embedded.access import Principal
from swarmlens.embedded.engine import SETTING_NAME_RE, Connection, Engine
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.admission import Admission
from swarmlens.embedded.sandbox import Policy, Sandbox, Statement, escape_param, setting_allowed, shape

log = logging.getLogger("swarmlens.clickhouse")

# URL parameters the HTTP layer consumes itself; every other one is a setting (as on a server).
_HTTP_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "close_session",
    "query_id", "compress", "decompress", "user", "password", "quota_key", "buffer_size", "stacktrace",
    "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "enable_http_compression", "replace_running_query",
    "http_zlib_compression_level", "client_protocol_version", "add_http_cors_header", "readonly",
    "http_native_compression_disable_checksumming_on_decompress", "role", "default_database",
    "http_response_buffer_size", "http_wait_end_of_query", "output_format_parallel_formatting",
}
_CONTENT_TYPES = {
    "JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson",
    "JSONCompactEachRow": "application/x-ndjson", "JSONStrings": "application/json",
    "CSV": "text/csv", "CSVWithNames": "text/csv", "TabSeparated": "text/tab-separated-values",
    "TSV": "text/tab-separated-values", "TabSeparatedWithNames": "text/tab-separated-values",
    "TSVWithNames": "text/tab-separated-values", "Pretty": "text/plain", "XML": "application/xml",
}
_CONTENT_TYPES_LOWER = {k.lower(): v for k, v in _CONTENT_TYPES.items()}
_RECV = 1 << 20
_INSERT_RETRY_PAUSES = (0.1, 0.5, 1.0, 2.0, 4.0)
_SPOOL_IN_MEMORY = 32 << 20
_MAX_HEADER_BYTES = 1 << 20  # request line and headers, as a server's http_max_uri_size
_IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may sit idle
_STALL_TIMEOUT = 300.0  # seconds a client may stall mid-request
_MAX_PROGRESS_HEADERS = 100
_FORM_SLICE = 16 << 10  # bytes handed to the multipart decoder at a time
_FORMAT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
# Output formats whose chunks concatenate into one valid result: these stream as the engine produces
# them. Every other format (JSON, *WithNames, Arrow, Parquet, Pretty, XML...) has one header, footer
# or file structure per result, so the engine formats it whole.
_STREAMABLE_FORMATS = frozenset(f.lower() for f in (
    "Native", "RowBinary", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV", "JSONEachRow",
    "JSONLines", "NDJSON", "JSONCompactEachRow", "JSONStringsEachRow", "JSONCompactStringsEachRow", "Values",
    "RawBLOB", "LineAsString", "Null", "BSONEachRow", "MsgPack", "CustomSeparated",
    # one event per line; the engine repeats the meta line in every chunk, which is dropped after the first
    "JSONEachRowWithProgress", "JSONStringsEachRowWithProgress", "JSONCompactEachRowWithProgress",
    "JSONCompactStringsEachRowWithProgress",
))


# The layers that confine the endpoint (docs/embedded-clickhouse.md): the kernel's Landlock
# restriction of the process, the engine's own settings, the statement check of the engine's parse.
LAYERS = frozenset({"kernel", "engine", "statements"})


# a function call or a query parameter in VALUES (outside its literals)
_CALL_OR_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(|\{")
# A server's max_session_timeout: a longer session_timeout is refused (Code 374), not shortened.
MAX_SESSION_TIMEOUT = 3600


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Drop(Exception):
    """Abort the request by closing the connection: the client retries the same body."""


class _Closed(Exception):
    """The client went away."""


class _EngineStream:
    """A streamed SELECT on an engine connection.

    chDB's StreamingResult wrapper ends a stream at the first chunk that holds no rows, which is
    also what a Native or *WithNames output starts with (a header block): the stream would end
    after its header. This reads the engine's chunks itself: the stream ends when the engine has
    nothing more to give (no chunk, or an empty one with no bytes)."""

    def __init__(self, engine: Engine, conn: Connection, sql: str, fmt: str, params: dict):
        self.engine, self.tag = engine, conn.tag
        self._low = conn.conn._conn  # the engine binding under chdb's Python wrapper
        self._res = self._low.send_query(sql, fmt, params=params or {})
        self.finished = False

    def fetch(self):
        if self.finished:
            return None
        try:
            r = self._low.streaming_fetch_result(self._res)
        except BaseException:
            self.finished = True  # the engine ended the query with its error
            raise
        if r is None or (r.rows_read() == 0 and not r.bytes()):
            self.finished = True
            return None
        return r

    def cancel(self) -> None:
        """Ends the stream on the request's own thread. The query is killed in the engine first,
        since the stream's own cancel waits for the next block, which an aggregate yields only at
        its end."""
        if not self.finished:
            self.finished = True
            _kill_quietly(self.engine, [self.tag])
            self._low.streaming_cancel_query(self._res)


@dataclass
class _Running:
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
                _kill_quietly(self.engine, [conn.tag])


def _kill_quietly(engine: Engine, tags: list[str] | None) -> None:
    try:
        engine.kill(tags)
    except Exception as exc:
        log.warning("KILL QUERY failed: %s", str(exc)[:300])


class _Registry:
    """Running queries by HTTP query id: Code 216 for a reused id, KILL QUERY, cancel on disconnect."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="swarmlens-clickhouse-watch", daemon=True)
        self._watcher.start()

    def add(self, r: _Running, replace: bool) -> None:
        with self._lock:
            old = self._running.get(r.query_id)
            if old is not None and not replace:
                raise ClickHouseError(216, "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
                                      f"Query with id = {r.query_id} is already running")
            self._running[r.query_id] = r
        if old is not None:
            old.cancel()

    def remove(self, r: _Running) -> None:
        with self._lock:
            if self._running.get(r.query_id) is r:
                del self._running[r.query_id]
        r.done.set()

    def snapshot(self) -> list[_Running]:
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


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, endpoint: "EmbeddedClickHouse"):
        self.endpoint = endpoint
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address) -> None:
        # a defect of ours that escaped a connection's handler: into the log, with its traceback
        log.exception("internal error on a connection from %s", client_address[0])


class _Request:
    """One HTTP request on a connection: its head, and its body as a stream of bytes."""

    def __init__(self, handler: "_Handler", event: h11.Request):
        self.h = handler
        self.method = event.method.decode("ascii", "replace").upper()
        self.target = event.target.decode("latin-1")
        self.headers: dict[str, str] = {}
        for k, v in event.headers:
            self.headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        te = self.headers.get("transfer-encoding")
        cl = self.headers.get("content-length", "0").strip()
        self.has_body = bool(te) or cl not in ("0", "")
        self.body_done = False  # EndOfMessage seen

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def body_chunks(self):
        """Yields the request body as it arrives (h11 undoes the chunked framing)."""
        if self.body_done:
            return
        h = self.h
        if h.conn.they_are_waiting_for_100_continue:
            h.send_event(h11.InformationalResponse(status_code=100, headers=[]))
        h.sock.settimeout(_STALL_TIMEOUT)
        while True:
            ev = h.next_event()
            if isinstance(ev, h11.Data):
                if ev.data:
                    yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self.body_done = True
                return
            elif isinstance(ev, h11.ConnectionClosed):
                raise _Closed()

    def discard_body(self) -> None:
        for _ in self.body_chunks():
            pass


class _Spool:
    """A request body or a buffered result, in memory up to 32 MiB and in a temporary file beyond."""

    def __init__(self) -> None:
        self._f = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
        self.size = 0
        self.skip = 0

    def write(self, data: bytes, limit: int | None = None) -> None:
        if not data:
            return
        self.size += len(data)
        if limit is not None and self.size > limit:
            raise ClickHouseError(0, "REQUEST_TOO_LARGE",
                                  f"Request body of more than {limit} bytes (after decompression); raise "
                                  "SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES or send smaller batches", http_status=413)
        self._f.write(data)

    def read_prefix(self, n: int) -> bytes:
        self._f.seek(0)
        return self._f.read(n)

    def chunks(self, size: int = 1 << 20):
        self._f.seek(self.skip)
        while True:
            piece = self._f.read(size)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._f.close()


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: requests one after another (keep-alive), each served in full."""

    def setup(self) -> None:
        self.sock: socket.socket = self.request
        # Small responses must not wait for the peer's delayed ACK (40 ms per query otherwise).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ep: EmbeddedClickHouse = self.server.endpoint  # type: ignore[attr-defined]
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self.close_after = False
        self.head_request = False
        self.ep._track(self, busy=False)

    def finish(self) -> None:
        self.ep._untrack(self)
        try:
            self.sock.close()
        except OSError:
            pass

    # -- h11 plumbing --------------------------------------------------------------------------
    def next_event(self):
        while True:
            ev = self.conn.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            try:
                data = self.sock.recv(_RECV)
            except (socket.timeout, TimeoutError):
                raise _Closed() from None
            except OSError:
                raise _Closed() from None
            self.conn.receive_data(data)

    def send_event(self, ev) -> None:
        data = self.conn.send(ev)
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                raise _Closed() from None

    def drop(self) -> None:
        self.close_after = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle(self) -> None:
        while True:
            self.sock.settimeout(_IDLE_TIMEOUT)
            try:
                ev = self.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            except _Closed:
                return
            if isinstance(ev, h11.ConnectionClosed) or not isinstance(ev, h11.Request):
                return
            self.ep._track(self, busy=True)
            req = _Request(self, ev)
            self.head_request = req.method == "HEAD"
            try:
                self._serve(req)
            except _Drop:
                self.drop()
                return
            except _Closed:
                return
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            finally:
                self.ep._track(self, busy=False)
            if self.close_after or self.conn.our_state is h11.MUST_CLOSE:
                return
            try:
                if not req.body_done:
                    req.discard_body()
                self.conn.start_next_cycle()
            except (h11.LocalProtocolError, h11.RemoteProtocolError, _Closed):
                return

    def _bad_request(self, exc: Exception) -> None:
        err = ClickHouseError(0, "BAD_REQUEST", f"Malformed HTTP request: {exc}", http_status=400)
        try:
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self._send_error(err, None, close=True)
            else:
                self.drop()
        except Exception:
            self.drop()

    # -- responses -----------------------------------------------------------------------------
    def _base_headers(self, close: bool) -> list[tuple[str, str]]:
        h = [("X-ClickHouse-Server-Display-Name", "swarmlens")]
        origin = self.ep.cors_origin
        if origin:
            h.append(("Access-Control-Allow-Origin", origin))
        if close or self.ep._stopping:
            h.append(("Connection", "close"))
            self.close_after = True
        else:
            h.append(("Keep-Alive", f"timeout={int(_IDLE_TIMEOUT)}"))
        return h

    def reply(self, status: int, body: bytes, content_type: str, headers: list | None = None,
              head: bool = False, close: bool = False) -> None:
        hs = [("Content-Type", content_type), *(headers or []), *self._base_headers(close),
              ("Content-Length", str(len(body)))]
        self.send_event(h11.Response(status_code=status, headers=_encode_headers(hs)))
        if body and not head and not self.head_request:  # an error answers HEAD with headers alone too
            self.send_event(h11.Data(data=body))
        self.send_event(h11.EndOfMessage())

    def _send_error(self, exc: ClickHouseError, query_id: str | None, close: bool = False) -> None:
        if exc.http_status >= 500:
            log.warning("query failed: %s", exc.message[:300])
        headers = [("X-ClickHouse-Exception-Code", str(exc.code))]
        if query_id:
            headers.append(("X-ClickHouse-Query-Id", query_id))
        body = exc.body(self.ep.version)
        enc = getattr(self, "error_encoding", None)
        if enc:  # an error is compressed like the result would have been
            coder = codecs.HttpEncoder(enc)
            body = coder.compress(body) + coder.finish()
            headers.append(("Content-Encoding", enc))
        self.reply(exc.http_status, body, "text/plain; charset=UTF-8", headers, close=close)

    # -- a request -----------------------------------------------------------------------------
    def _serve(self, req: _Request) -> None:
        ep = self.ep
        query_id = None
        self.error_encoding = None
        try:
            url = urlsplit(req.target)
            path = url.path.rstrip("/") or "/"
            if req.method == "OPTIONS":
                req.discard_body()
                headers = []
                if ep.cors_origin:
                    headers += [("Access-Control-Allow-Headers", "origin, x-requested-with, x-clickhouse-format, "
                                 "x-clickhouse-user, x-clickhouse-key, x-clickhouse-database, authorization, "
                                 "content-type"), ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
                                ("Access-Control-Max-Age", "86400")]
                return self.reply(204, b"", "text/plain; charset=UTF-8", headers)
            if req.method not in ("GET", "POST", "HEAD"):
                req.discard_body()
                raise ClickHouseError(0, "HTTP_METHOD_NOT_ALLOWED", f"HTTP method {req.method[:20]} is not allowed",
                                      http_status=405)
            if path in ("/ping", "/replicas_status"):
                req.discard_body()
                return self.reply(200, b"Ok.\n", "text/plain; charset=UTF-8", head=req.method == "HEAD")
            if path not in ("/", "/query"):
                req.discard_body()
                raise ClickHouseError(0, "HTTP_NOT_FOUND",
                                      f"There is no handle {url.path[:200]}. Use / or /?query= for queries and /ping "
                                      "for health checks", http_status=404)
            params: dict[str, str] = dict(parse_qsl(url.query, keep_blank_values=True))
            if "transfer-encoding" in req.headers and "content-length" in req.headers:
                # RFC 9112 6.1: a request with both may be refused; one a proxy framed otherwise than h11 would
                # smuggle a second request in its body
                raise ClickHouseError(0, "BAD_REQUEST", "Request with both Content-Length and Transfer-Encoding",
                                      http_status=400)
            for name in ("query_id", "session_id"):
                if _CONTROL_RE.search(params.get(name) or ""):
                    raise ClickHouseError(36, "BAD_ARGUMENTS", f"The {name} must not contain control characters")
            query_id = params.get("query_id") or str(uuid.uuid4())
            if params.get("enable_http_compression") in ("1", "true"):
                self.error_encoding = codecs.choose_http_encoding(req.header("accept-encoding"))
            who = self._authenticate(req, params)
            _Execution(self, req, params, query_id, who).run()
        except ClickHouseError as exc:
            if req.has_body and not req.body_done:
                self.close_after = True  # the rest of the body is unread
            self._send_error(exc, query_id, close=self.close_after)
        except (_Drop, _Closed, h11.RemoteProtocolError):
            raise
        except Exception as exc:  # a bug of ours must not take the endpoint down
            log.exception("internal error serving %s", req.target[:200])
            self.close_after = True
            try:
                self._send_error(ClickHouseError(1001, "STD_EXCEPTION", f"Internal error: {type(exc).__name__}: {exc}"),
                                 query_id, close=True)
            except Exception:
                self.drop()

    def _authenticate(self, req: _Request, params: dict[str, str]) -> Principal:
        user = password = None
        auth = req.header("authorization", "") or ""
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            except Exception:
                raise ClickHouseError(516, "AUTHENTICATION_FAILED", "Malformed Basic authorization header") from None
        if req.header("x-clickhouse-user") is not None:
            user = req.header("x-clickhouse-user")
            password = req.header("x-clickhouse-key", "")
        if "user" in params:
            user = params["user"]
            password = params.get("password", "")
        user = user or "default"
        password = password or ""
        who = self.ep.users.authenticate(user, password)
        if who is None:
            raise ClickHouseError(516, "AUTHENTICATION_FAILED",
                                  f"{user[:100]}: Authentication failed: password is incorrect, or there is no user "
                                  "with such name")
        return who


def _encode_headers(hs) -> list[tuple[bytes, bytes]]:
    # A value a client chose (query id, session id) can never end the header early: the ids are
    # refused with control characters in them, and anything that slips through is blanked here.
    return [(k.encode("latin-1"), _CONTROL_RE.sub("?", v).strip().encode("latin-1", "replace")) for k, v in hs]


_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _int_param(params: dict, name: str, default: int = 0) -> int:
    v = params.get(name)
    if v is None or v == "":
        return default
    if v.lower() in ("true", "false"):
        return 1 if v.lower() == "true" else 0
    try:
        return int(v)
    except ValueError:
        raise ClickHouseError(27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
                              f"Cannot parse value of '{name}': {v[:50]!r}") from None


class _Execution:
    """Everything one query needs: its settings, connection, statement, result and headers."""

    def __init__(self, handler: _Handler, req: _Request, params: dict[str, str], query_id: str, who: Principal):
        self.h = handler
        self.ep = handler.ep
        self.req = req
        self.params = params
        self.query_id = query_id
        self.who = who
        self.user = who.name
        self.external: list[tuple[str, dict, _Spool]] = []
        self.progress: list[dict] = []
        self.summary: dict = {}
        self.spoilt = False  # the engine connection saw a stream fail or cancelled: never pool it
        self._admitted = False  # counted against the user's concurrent queries

    # -- parsing -------------------------------------------------------------------------------
    def run(self) -> None:
        req, params = self.req, self.params
        self._zlib_level()  # refused before anything runs, not when the result is ready
        ctype = (req.header("content-type") or "").lower()
        body = None
        if req.method == "POST" and req.has_body and ctype.startswith("multipart/form-data"):
            self._read_form()
        try:
            settings, qparams = self._split_params()
            url_query = params.get("query", "")
            head = sqltext.split_data_insert(url_query) if url_query else None
            data = None
            if req.method == "POST" and req.has_body and not req.body_done:
                body = self._read_body()
            if head is not None and head.data_offset < len(url_query):
                data = _Spool()  # data inline in the URL query, after the FORMAT clause
                data.write(url_query[head.data_offset:].encode())
                if body is not None:
                    for chunk in body.chunks():
                        data.write(chunk)
                    body.close()
                body = data
                sql = head.statement
            elif head is not None:
                data, sql = body, head.statement
            else:
                sql, data, head = self._statement(url_query, body)
            if not sql.strip():
                raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
            self._execute(sql, head, data, settings, qparams)
        finally:
            if body is not None:
                body.close()
            for _, _, spool in self.external:
                spool.close()

    def _split_params(self):
        settings: dict[str, str] = {}
        qparams: dict[str, str] = {}
        external_names = {name for name, _, _ in self.external}
        for k, v in self.params.items():
            if k.startswith("param_"):
                qparams[k[6:]] = v
            elif k in _HTTP_PARAMS or not k:
                continue
            elif k == "run_query_in_background":
                if v not in ("0", "", "false"):
                    raise ClickHouseError(48, "NOT_IMPLEMENTED", "run_query_in_background is not available here")
                continue
            elif any(k == f"{n}_{suffix}" for n in external_names for suffix in ("structure", "types", "format")):
                continue
            else:
                if not SETTING_NAME_RE.match(k):
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{k[:100]}'")
                if self.ep.check_statements and not setting_allowed(k, v):
                    raise ClickHouseError(497, "ACCESS_DENIED",
                                          f"Not enough privileges: setting {k} = {v[:100]!r} is not allowed here")
                settings[k] = v
        return settings, qparams

    def _read_form(self) -> None:
        """multipart/form-data: fields are URL parameters (query, param_*, settings); file parts are
        external data tables, named by the part."""
        from werkzeug.exceptions import RequestEntityTooLarge
        from werkzeug.http import parse_options_header
        from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

        _, opts = parse_options_header(self.req.header("content-type"))
        boundary = (opts.get("boundary") or "").encode("latin-1")
        if not boundary:
            raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", "multipart/form-data without a boundary",
                                  http_status=400)
        limit = self.ep.max_body_bytes
        decoder = MultipartDecoder(boundary, max_form_memory_size=self.ep.max_query_bytes, max_parts=1000)
        current = None  # (name, is_file, buffer)
        total = 0

        def drain():
            nonlocal current
            while True:
                ev = decoder.next_event()
                if isinstance(ev, NeedData) or isinstance(ev, Epilogue):
                    return isinstance(ev, Epilogue)
                if isinstance(ev, (Field, File)) and ev.name is None:
                    raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", "A multipart/form-data part without a name",
                                          http_status=400)
                if isinstance(ev, Field):
                    current = (ev.name, False, bytearray())
                elif isinstance(ev, File):
                    current = (ev.name, True, _Spool())
                    self.external.append((ev.name, {"filename": ev.filename}, current[2]))
                elif isinstance(ev, Data) and current is not None:
                    name, is_file, buf = current
                    if is_file:
                        buf.write(ev.data, limit)
                    else:
                        buf += ev.data
                        if len(buf) > self.ep.max_query_bytes:
                            raise ClickHouseError(62, "SYNTAX_ERROR", f"Form field {name[:50]} is too large")
                    if not ev.more_data and not is_file:
                        self.params[name] = bytes(buf).decode("utf-8", "replace")

        try:
            done = False
            for chunk in self.req.body_chunks():
                total += len(chunk)
                if total > limit:
                    raise ClickHouseError(0, "REQUEST_TOO_LARGE", f"Request body of more than {limit} bytes",
                                          http_status=413)
                # in slices: the decoder refuses a buffer beyond max_form_memory_size, file parts included
                for at in range(0, len(chunk), _FORM_SLICE):
                    decoder.receive_data(chunk[at:at + _FORM_SLICE])
                    done = drain() or done
            decoder.receive_data(None)
            drain()
        except ClickHouseError:
            raise
        except (_Closed, _Drop, h11.RemoteProtocolError):
            raise
        except RequestEntityTooLarge:
            raise ClickHouseError(0, "REQUEST_TOO_LARGE", "multipart/form-data beyond its limits: at most 1000 parts, "
                                  f"and a field of at most {self.ep.max_query_bytes} bytes "
                                  "(SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES); send large data as a file part",
                                  http_status=413) from None
        except Exception as exc:
            raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", f"Malformed multipart/form-data body: {exc}",
                                  http_status=400) from None

    def _read_body(self) -> _Spool:
        """The request body, decoded (Content-Encoding, then ClickHouse blocks with decompress=1) while it
        streams, within the body limit."""
        limit = self.ep.max_body_bytes
        spool = _Spool()
        try:
            decoders = [codecs.http_decoder(self.req.header("content-encoding"))]
            if self.params.get("decompress") == "1":
                decoders.append(codecs.NativeBlockDecoder())

            def through(pieces, i):
                if i == len(decoders):
                    yield from pieces
                    return
                d = decoders[i]
                for p in pieces:
                    yield from through(d.feed(p), i + 1)

            for raw in self.req.body_chunks():
                for piece in through([raw], 0):
                    spool.write(piece, limit)
            for i, d in enumerate(decoders):
                for piece in through(d.finish(), i + 1):
                    spool.write(piece, limit)
        except (ClickHouseError, _Closed, h11.RemoteProtocolError):
            # a broken framing (or a body cut short) is malformed HTTP, not a compression error
            spool.close()
            raise
        except Exception as exc:
            spool.close()
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress the request body: {exc}") from None
        return spool

    def _statement(self, url_query: str, body: _Spool | None):
        """Builds the SQL from the URL query and the body; finds INSERT data in the body."""
        ep = self.ep
        if body is None or body.size == 0:
            if len(url_query) > ep.max_query_bytes:
                raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {len(url_query)} bytes")
            return url_query, None, None
        if not url_query:
            prefix = body.read_prefix(ep.max_query_bytes + 1)
            text = prefix.decode("latin-1")  # one char per byte: offsets stay byte offsets
            head = sqltext.split_data_insert(text)
            if head is not None:
                head.statement = _decode_sql(prefix[:len(head.statement)])
                body.skip = head.data_offset
                return head.statement, body, head
            if body.size > ep.max_query_bytes:
                raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes "
                                      f"(limit {ep.max_query_bytes}); send INSERT data with a FORMAT clause")
            return _decode_sql(prefix), None, None
        if body.size > ep.max_query_bytes:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes")
        return url_query + "\n" + _decode_sql(body.read_prefix(body.size)), None, None

    # -- execution -----------------------------------------------------------------------------
    def _execute(self, sql: str, head, data: _Spool | None, settings: dict, qparams: dict) -> None:
        ep, params, req = self.ep, self.params, self.req
        session_id = params.get("session_id")
        # One user's queries wait their turn here, never holding an engine connection while they wait.
        # KILL QUERY does not wait: a user at the limit must be able to stop its own queries.
        counted = head is not None or next(iter(sqltext.tokens(sql[:100])), ("",))[0] != "KILL"
        if counted:
            ep.admission.enter(self.user)
        try:
            conn, session = self._connection(session_id)
        except BaseException:
            if counted:
                ep.admission.leave(self.user)
            raise
        self._conn, self._session, self._st, self._running = conn, session, None, None
        self._released = False
        self._admitted = counted
        self._discard = False
        try:
            database = params.get("database") or req.header("x-clickhouse-database") or None
            if head is None and access.is_access_statement(sql):
                conn.prepare(database, {})
                return self._access(conn, sql)
            check_text = sql if head is None else f"{head.statement} FORMAT {head.format}"
            st = ep.sandbox.inspect(ep.engine, check_text, qparams)
            if ep.check_statements:
                st.check()
            # the user's roles, from the same parse (whatever the confinement layers)
            ep.users.authorize(self.who, st, database or conn.home)
            ep.users.limits(self.who, settings, st)
            relax = head is None and st.root == "InsertQuery" and bool(conn.locked) and \
                self._values_checked(sql, qparams, database or conn.home)
            conn.prepare(database, settings, relax=relax)
            self._check_readonly(conn, st, settings)
            fmt = None
            if st.returns_rows:
                fmt = st.output_format or params.get("default_format") or \
                    req.header("x-clickhouse-format") or "TabSeparated"
                if not _FORMAT_NAME_RE.match(fmt):
                    raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {fmt[:100]!r}")
            if self.external:
                self._load_external(conn)
                self._discard = True
            if st.root == "Set" and "readonly" in [n.lower() for n in st.sets]:
                self._set_readonly(conn, st, session)
                return self._finish_empty(fmt=None)
            self._st = st
            running = _Running(self.query_id, self.user, sql[:1000], time.time(), self.h.sock,
                               watch=st.reads_only, engine=ep.engine, conn=conn)
            ep.registry.add(running, replace=_int_param(params, "replace_running_query") == 1)
            self._running = running
            conn.current = running
            if st.root == "KillQueryQuery":
                self._kill(conn, st, fmt, qparams)
            elif head is not None:
                self._insert(conn, head, data, running)
            elif st.streams and fmt.lower() in _STREAMABLE_FORMATS:
                self._stream(conn, sql, fmt, qparams, running)
            else:
                self._run_whole(conn, sql, fmt, qparams, st)
        except BaseException:
            self._release(ok=False)
            raise
        finally:
            self._release(ok=True)

    def _release(self, ok: bool) -> None:
        """Ends the request's hold on its query id, session and connection. The send functions call
        it just before the last bytes of a response leave, so a client that sends its next request
        the moment it has the answer finds the session free and the query id unused."""
        if self._released:
            return
        self._released = True
        ep, conn, st = self.ep, self._conn, self._st
        try:
            conn.conn.set_progress_callback(None)
        except Exception:
            pass
        with conn.kill_lock:
            conn.current = None
        if self._running is not None:
            ep.registry.remove(self._running)
        if self._admitted:
            self._admitted = False
            ep.admission.leave(self.user)
        if self._session:
            if ok and st is not None and st.stateful:
                conn.note_statement(st.canonical)
            for name, _, _ in self.external:  # external data lives for its query alone
                try:
                    conn.run(f"DROP TEMPORARY TABLE IF EXISTS {_quote_ident(name)}", "TabSeparated")
                except ClickHouseError:
                    pass
            try:
                close = _int_param(self.params, "close_session") == 1
            except ClickHouseError:
                close = False
            if close:  # before the lock is released: a request waiting for it must not get a closing connection
                ep.engine.close_session(self._session_key(self.params.get("session_id")), conn)
            conn.lock.release()
        else:
            # a failed request may have left the connection mid-change: never pool it
            discard = self._discard or self.spoilt or not ok or (st is not None and st.stateful)
            ep.engine.release(conn, discard=discard)

    def _connection(self, session_id: str | None) -> tuple[Connection, bool]:
        if not session_id:
            return self.ep.engine.acquire(), False
        try:
            timeout = float(self.params.get("session_timeout") or 60)
        except ValueError:
            timeout = math.nan
        if not math.isfinite(timeout):  # nan would compare false with everything: a session never expiring
            raise ClickHouseError(36, "BAD_ARGUMENTS", "Invalid session timeout")
        if timeout > MAX_SESSION_TIMEOUT:
            raise ClickHouseError(374, "INVALID_SESSION_TIMEOUT",
                                  f"Session timeout '{timeout:g}' is larger than max_session_timeout: "
                                  f"{MAX_SESSION_TIMEOUT}. Maximum session timeout could be modified in configuration "
                                  "file")
        timeout = max(timeout, 1.0)
        for _ in range(3):
            conn = self.ep.engine.session(self._session_key(session_id), timeout,
                                          self.params.get("session_check") == "1")
            if not conn.lock.acquire(blocking=False):
                raise ClickHouseError(373, "SESSION_IS_LOCKED",
                                      f"Session {session_id[:100]} is locked by a concurrent client")
            if not conn.closed:
                return conn, True
            # closed by the request that held it just before (close_session=1): the id starts a new session
            conn.lock.release()
        raise ClickHouseError(373, "SESSION_IS_LOCKED", f"Session {session_id[:100]} is being closed and reopened")

    def _values_checked(self, sql: str, qparams: dict, database: str) -> bool:
        """For `INSERT ... VALUES (...)` written in the query text: whether its values hold more than
        literals (a function call such as now(), a {name:Type} parameter) and the statement check has
        read them as the SELECT of those tuples and found nothing that reaches outside. Then, and
        only then, the engine layer is relaxed for this request, so that clients that send
        parameters or expressions there (clickhouse-connect's server-side parameters) work. Values in
        a request body, and everything the check cannot read, stay under the engine layer."""
        values = next((t for t in sqltext.tokens(sql) if t[0] == "VALUES" and t[3] == 0), None)
        if values is None:
            return False
        tail = sql[values[2]:].strip().rstrip(";").strip()
        if not tail.startswith("("):
            return False
        outside = shape(tail)
        if outside is not None and not _CALL_OR_PARAM.search(outside):
            return False  # literals only: the hardened engine reads them
        try:
            check = self.ep.sandbox.inspect(self.ep.engine, "SELECT " + tail, qparams)
        except ClickHouseError:
            return False  # the engine answers for the statement itself
        if check.denied:
            if self.ep.check_statements:
                check.check()
            return False
        self.ep.users.authorize(self.who, check, database)
        return True

    def _session_key(self, session_id: str | None) -> str | None:
        """Sessions belong to their user, as on a server: another user's request with the same id
        opens a session of its own."""
        return None if session_id is None else f"{session_id}\x00{self.user}"

    def _check_readonly(self, conn: Connection, st: Statement, settings: dict) -> None:
        level = max(_int_param(self.params, "readonly"), conn.readonly)
        is_get = self.req.method in ("GET", "HEAD")
        if is_get and level == 0:
            level = 2
        if level == 0:
            return
        if st.root == "Set":
            names = [n for n in st.sets if n.lower() != "readonly"]
            if level == 1 and names:
                raise ClickHouseError(164, "READONLY", f"Cannot modify '{names[0]}' setting in readonly mode")
            if any(n.lower() == "readonly" for n in st.sets):
                raise ClickHouseError(164, "READONLY", "Cannot modify 'readonly' setting in readonly mode")
            return
        if level == 1:
            if st.query_settings:
                raise ClickHouseError(164, "READONLY",
                                      f"Cannot modify '{st.query_settings[0]}' setting in readonly mode")
            if conn.readonly >= 1 and settings:
                raise ClickHouseError(164, "READONLY", f"Cannot modify '{next(iter(settings))}' setting in readonly mode")
        if not st.reads_only and st.root != "UseQuery":
            if is_get and _int_param(self.params, "readonly") == 0 and conn.readonly == 0:
                raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode. For queries over HTTP, "
                                      "method GET implies readonly. You should use method POST for modifying queries")
            raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode")

    def _set_readonly(self, conn: Connection, st: Statement, session: bool) -> None:
        """`SET readonly = N` is kept by the endpoint, never given to the engine; other settings in
        the same SET are applied as usual."""
        if any(n.lower() != "readonly" for n in st.sets):
            raise ClickHouseError(36, "BAD_ARGUMENTS", "Set readonly in a SET statement of its own on this endpoint")
        if session:  # a sessionless request's readonly ends with it
            conn.note_statement(st.canonical)

    def _load_external(self, conn: Connection) -> None:
        """External data: each file part becomes a temporary table for this query alone."""
        for name, _, spool in self.external:
            structure = self.params.get(f"{name}_structure")
            types = self.params.get(f"{name}_types")
            fmt = self.params.get(f"{name}_format") or "TabSeparated"
            if structure is None and types is not None:
                structure = ", ".join(f"_{i + 1} {t.strip()}" for i, t in enumerate(types.split(",")))
            if not structure:
                raise ClickHouseError(36, "BAD_ARGUMENTS",
                                      f"Neither structure nor types have not been provided for external table {name[:100]}. "
                                      f"Use fields {name}_structure or {name}_types to do so.")
            ddl = f"CREATE TEMPORARY TABLE {_quote_ident(name)} ({structure}) ENGINE = Memory"
            verdict = self.ep.sandbox.inspect(self.ep.engine, ddl)
            if self.ep.check_statements:
                verdict.check()
            conn.run(ddl, "TabSeparated")
            if not _FORMAT_NAME_RE.match(fmt):
                raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {fmt[:50]}")
            ins = None
            try:
                ins = conn.conn.send_insert(f"INSERT INTO {_quote_ident(name)}", fmt)
                for chunk in spool.chunks():
                    ins.append(chunk)
                ins.finish()
            except Exception as exc:
                if ins is not None:
                    try:
                        ins.cancel()
                    except Exception:
                        pass
                raise ClickHouseError.from_engine(exc) from None

    def _progress_cb(self):
        interval = _int_param(self.params, "http_headers_progress_interval_ms", 100) / 1000.0
        last = [0.0]

        def cb(p):
            try:
                self.summary = dict(p)
                now = time.monotonic()
                if now - last[0] >= interval and len(self.progress) < _MAX_PROGRESS_HEADERS:
                    last[0] = now
                    self.progress.append(dict(p))
            except Exception:
                pass
        return cb

    def _headers(self, fmt: str | None, result_rows: int | None, result_bytes: int, elapsed_ns: int,
                 stats=None, written=(0, 0)) -> list[tuple[str, str]]:
        s = self.summary
        summary = {
            "read_rows": str(_stat(stats, "storage_rows_read", s.get("read_rows", 0))),
            "read_bytes": str(_stat(stats, "storage_bytes_read", s.get("read_bytes", 0))),
            "written_rows": str(written[0] or s.get("written_rows", 0)),
            "written_bytes": str(written[1] or s.get("written_bytes", 0)),
            "total_rows_to_read": str(s.get("total_rows_to_read", 0)),
            "result_rows": str(result_rows or 0), "result_bytes": str(result_bytes),
            "elapsed_ns": str(elapsed_ns),
        }
        headers = [("X-ClickHouse-Query-Id", self.query_id), ("X-ClickHouse-Timezone", self.ep.timezone)]
        if fmt:
            headers.append(("X-ClickHouse-Format", fmt))
        if self.params.get("session_id"):
            headers.append(("X-ClickHouse-Session-Id", self.params["session_id"]))
        if _int_param(self.params, "send_progress_in_http_headers") == 1:
            for p in self.progress:
                headers.append(("X-ClickHouse-Progress", json.dumps(_progress_json(p), separators=(",", ":"))))
        headers.append(("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":"))))
        return headers

    def _content_type(self, fmt: str | None) -> str:
        if not fmt:
            return "text/plain; charset=UTF-8"
        ctype = _CONTENT_TYPES_LOWER.get(fmt.lower(), "application/octet-stream") + "; charset=UTF-8"
        if ctype.startswith("text/csv"):  # as a server's CSV output says
            ctype += "; header=" + ("present" if "withnames" in fmt.lower() else "absent")
        return ctype

    def _encoder(self):
        """(kind, encoder) for the response body: ClickHouse blocks, HTTP compression, or none."""
        if self.params.get("compress") == "1":
            return "native", None
        if _int_param(self.params, "enable_http_compression") == 1:
            enc = codecs.choose_http_encoding(self.req.header("accept-encoding"))
            if enc:
                return enc, codecs.HttpEncoder(enc, self._zlib_level())
        return None, None

    def _zlib_level(self) -> int | None:
        level = _int_param(self.params, "http_zlib_compression_level", -1)
        if level == -1:
            return None
        if not 1 <= level <= 9:
            raise ClickHouseError(36, "BAD_ARGUMENTS", f"http_zlib_compression_level must be 1 to 9, not {level}")
        return level

    def _encode(self, kind, enc, chunk: bytes) -> bytes:
        if kind == "native":
            return codecs.native_block_encode(chunk) if chunk else b""
        if enc is not None:
            return enc.compress(chunk)
        return chunk

    def _send_whole(self, body: bytes | _Spool, fmt, headers) -> None:
        self._release(ok=True)  # the result is complete: free the session before the client has it
        kind, enc = self._encoder()
        ctype = "application/octet-stream" if kind == "native" and fmt else self._content_type(fmt)
        if kind and kind != "native":
            headers.append(("Content-Encoding", kind))
        if isinstance(body, _Spool):
            if kind is None:
                h = self.h
                hs = [("Content-Type", ctype), *headers, *h._base_headers(False), ("Content-Length", str(body.size))]
                h.send_event(h11.Response(status_code=200, headers=_encode_headers(hs)))
                if self.req.method != "HEAD":
                    for chunk in body.chunks():
                        h.send_event(h11.Data(data=chunk))
                h.send_event(h11.EndOfMessage())
                return
            data = b"".join(self._encode(kind, enc, c) for c in body.chunks()) + (enc.finish() if enc else b"")
        else:
            data = self._encode(kind, enc, body) + (enc.finish() if enc and body else b"") if body else b""
        self.h.reply(200, data, ctype, headers, head=self.req.method == "HEAD")

    def _finish_empty(self, fmt) -> None:
        self._send_whole(b"", fmt, self._headers(fmt, 0, 0, 0))

    def _run_whole(self, conn: Connection, sql: str, fmt, qparams, st: Statement) -> None:
        conn.conn.set_progress_callback(self._progress_cb())
        started = time.perf_counter_ns()
        try:
            result = conn.run(sql, fmt or "TabSeparated", qparams)
        finally:
            conn.conn.set_progress_callback(None)
        elapsed = time.perf_counter_ns() - started
        out = bytes(result.bytes()) if st.returns_rows else b""
        rows = _stat(result, "rows_read", 0) if st.returns_rows else 0
        headers = self._headers(fmt, rows, len(out), elapsed, stats=result,
                                written=(_stat(result, "rows_written", 0), _stat(result, "bytes_written", 0)))
        self._send_whole(out, fmt, headers)

    def _stream(self, conn: Connection, sql: str, fmt: str, qparams, running: _Running) -> None:
        """A SELECT: chunks leave as the engine produces them, or are spooled first when the client
        asked for wait_end_of_query=1 (then the summary is complete and an error keeps its status)."""
        h = self.h
        conn.conn.set_progress_callback(self._progress_cb())
        started = time.perf_counter_ns()
        rows = nbytes = 0
        stream = None
        try:
            try:
                stream = _EngineStream(self.ep.engine, conn, sql, fmt, qparams)
                running.stream = stream
                if running.cancelled.is_set():
                    stream.cancel()
                first = stream.fetch()
            except Exception as exc:
                raise self._engine_error(exc, running) from None
            if first is None and running.cancelled.is_set():
                # killed before its first block (an aggregate): an error, never an empty result
                self.spoilt = True
                raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
            wait = _int_param(self.params, "wait_end_of_query") == 1
            if wait:
                spool = _Spool()
                try:
                    chunk = first
                    while chunk is not None:
                        b = chunk.bytes()
                        rows += _stat(chunk, "rows_read", 0)
                        nbytes += len(b)
                        spool.write(b)
                        try:
                            chunk = stream.fetch()
                        except Exception as exc:
                            raise self._engine_error(exc, running) from None
                    if running.cancelled.is_set():
                        raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
                    headers = self._headers(fmt, rows, nbytes, time.perf_counter_ns() - started)
                    self._send_whole(spool, fmt, headers)
                finally:
                    spool.close()
                return
            # Streamed: the status and headers leave with the first chunk; a later error is written
            # into the body in the server's tagged format.
            kind, enc = self._encoder()
            tag = secrets.token_hex(8)
            headers = self._headers(fmt, None, 0, time.perf_counter_ns() - started)
            headers.append(("X-ClickHouse-Exception-Tag", tag))
            if kind and kind != "native":
                headers.append(("Content-Encoding", kind))
            ctype = "application/octet-stream" if kind == "native" else self._content_type(fmt)
            hs = [("Content-Type", ctype), *headers, *h._base_headers(False)]
            h.send_event(h11.Response(status_code=200, headers=_encode_headers(hs)))
            head_only = self.req.method == "HEAD"
            chunk = first
            drop_meta = fmt.lower().endswith("withprogress")
            try:
                while chunk is not None:
                    b = chunk.bytes()
                    if drop_meta and chunk is not first:
                        b = b"".join(line for line in bytes(b).splitlines(keepends=True)
                                     if not line.startswith(b'{"meta":'))
                    if b and not head_only:
                        h.send_event(h11.Data(data=self._encode(kind, enc, bytes(b))))
                    try:
                        chunk = stream.fetch()
                        err = None
                        if chunk is None and running.cancelled.is_set():
                            self.spoilt = True
                            # a cancelled stream just ends: say so, never pass a cut result off as whole
                            err = ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
                    except Exception as exc:
                        err = self._engine_error(exc, running)
                    if err is not None:
                        msg = err.body(self.ep.version)
                        block = (b"__exception__\r\n" + tag.encode() + b"\r\n" + msg +
                                 f"{len(msg)} {tag}".encode() + b"\r\n__exception__\r\n")
                        if not head_only:
                            h.send_event(h11.Data(data=self._encode(kind, enc, block)))
                        h.close_after = True
                        chunk = None
                if enc is not None and not head_only:
                    tail = enc.finish()
                    if tail:
                        h.send_event(h11.Data(data=tail))
                conn.conn.set_progress_callback(None)
                self._release(ok=not self.spoilt)
                h.send_event(h11.EndOfMessage())
            except _Closed:
                running.cancel()
                raise
        finally:
            if stream is not None and not stream.finished:
                self.spoilt = True
                try:
                    stream.cancel()
                except Exception:
                    pass
            if not self._released:
                conn.conn.set_progress_callback(None)

    def _engine_error(self, exc: Exception, running: _Running) -> ClickHouseError:
        self.spoilt = True
        if running.cancelled.is_set():
            return ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
        text = str(exc)
        if text.startswith("Streaming query failed: "):
            text = text[len("Streaming query failed: "):]
        return ClickHouseError.from_engine(RuntimeError(text))

    def _insert(self, conn: Connection, head, data: _Spool | None, running: _Running) -> None:
        """Runs a buffered insert. A failure of the data is the client's to hear about; a failure of
        the server's is retried here with the same bytes (insert deduplication makes a repeat of a
        partly applied attempt harmless), and only when it persists is the connection closed."""
        started = time.perf_counter_ns()
        for attempt, pause in enumerate(_INSERT_RETRY_PAUSES + (None,)):
            inserter = None
            try:
                inserter = conn.conn.send_insert(head.statement, head.format)
                if data is not None:
                    for chunk in data.chunks():
                        if running.cancelled.is_set():
                            raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
                        inserter.append(chunk)
                result = inserter.finish()
                break
            except Exception as exc:
                if inserter is not None:
                    try:
                        inserter.cancel()
                    except Exception:
                        pass
                err = exc if isinstance(exc, ClickHouseError) else ClickHouseError.from_engine(exc)
                if not err.server_side:
                    raise err from None
                if pause is None or self.ep._stopping:
                    log.error("insert failed %d times for a reason of the server's; closing the connection "
                              "without an answer: %s", attempt + 1, err.message[:500])
                    raise _Drop() from None
                log.warning("insert failed for a reason of the server's, retrying in %.1f s: %s",
                            pause, err.message[:300])
                time.sleep(pause)
        written = (_stat(result, "rows_written", 0), _stat(result, "bytes_written", 0))
        self._send_whole(b"", None, self._headers(None, 0, 0, time.perf_counter_ns() - started, stats=result,
                                                  written=written))

    def _kill(self, conn: Connection, st: Statement, fmt: str, qparams) -> None:
        """KILL QUERY against the endpoint's running queries, which carry the HTTP query ids: the WHERE
        clause is evaluated by the engine over a table of them."""
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
        mine = [r for r in self.ep.registry.snapshot() if r.query_id != self.query_id
                and (self.who.admin or r.user == self.user)]
        rows = "\n".join(json.dumps({"query_id": r.query_id, "user": r.user, "query": r.query,
                                     "elapsed": time.time() - r.started}) for r in mine)
        select = ("SELECT query_id FROM format(JSONEachRow, 'query_id String, user String, query String, "
                  f"elapsed Float64', {{__kill_rows:String}}) WHERE {cond}")
        kp = {**qparams, "__kill_rows": escape_param(rows)}
        self.ep.sandbox.inspect(self.ep.engine, select, kp).check()
        ids = conn.run(select, "TabSeparatedRaw", kp).bytes().decode().split("\n")
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
        out = bytes(result.bytes())
        self._send_whole(out, fmt, self._headers(fmt, len(matched), len(out), 0))


    def _access(self, conn: Connection, sql: str) -> None:
        """The access statements (users, roles, grants), answered by the endpoint from its users file."""
        users = self.ep.users
        st = access.parse_access(sql)
        mine = st.verb in ("SHOW_GRANTS", "SHOW_ROLES") and (not st.names or st.names == [self.user])
        if not (self.who.admin or mine):
            raise ClickHouseError(497, "ACCESS_DENIED", f"{self.user}: Not enough privileges. To execute this query, "
                                  "it's necessary to have the grant ACCESS MANAGEMENT ON *.* (the admin role)")
        rows: list[dict] = []
        columns = ""
        if st.verb == "CREATE_USER":
            users.create(st.names[0], st.password, st.roles or [], st.if_not_exists, st.replace)
        elif st.verb == "ALTER_USER":
            users.alter(st.names[0], st.password, st.roles, st.if_exists)
        elif st.verb == "DROP_USER":
            users.drop(st.names, st.if_exists)
        elif st.verb in ("GRANT", "REVOKE"):
            users.grant(st.roles, st.names, revoke=st.verb == "REVOKE")
        elif st.verb == "SHOW_USERS":
            columns, rows = "name String", [{"name": n} for n in users.names()]
        elif st.verb == "SHOW_ROLES":
            columns, rows = "name String", [{"name": r} for r in
                                             (access.ROLES if self.who.admin else users.roles_of(self.user))]
        elif st.verb in ("SHOW_GRANTS", "SHOW_ACCESS"):
            names = st.names or ([self.user] if st.verb == "SHOW_GRANTS" else users.names())
            for name in names:
                if name not in users.names():
                    raise ClickHouseError(192, "UNKNOWN_USER", f"There is no user `{name[:64]}` in user directories")
                roles = users.roles_of(name)
                if roles:
                    grant = f"GRANT {', '.join(roles)} TO {_quote_ident(name) if not name.isidentifier() else name}"
                    rows.append({"GRANTS": grant})
            columns = "GRANTS String"
        if not columns:
            return self._finish_empty(fmt=None)
        fmt = st.output_format or self.params.get("default_format") or \
            self.req.header("x-clickhouse-format") or "TabSeparated"
        if not _FORMAT_NAME_RE.match(fmt):
            raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {fmt[:100]!r}")
        body = "\n".join(json.dumps(r) for r in rows)
        result = conn.run(f"SELECT * FROM format(JSONEachRow, {{__c:String}}, {{__rows:String}})", fmt,
                          {"__c": columns, "__rows": escape_param(body)})
        out = bytes(result.bytes())
        self._send_whole(out, fmt, self._headers(fmt, len(rows), len(out), 0))


def _progress_json(p: dict) -> dict:
    keys = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read", "result_rows",
            "result_bytes", "elapsed_ns")
    return {k: str(p.get(k, 0)) for k in keys}


def _stat(result, name: str, default=0) -> int:
    if result is None:
        return int(default or 0)
    try:
        v = getattr(result, name)
        return int(v() if callable(v) else v)
    except Exception:
        return int(default or 0)


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _decode_sql(b: bytes) -> str:
    try:
        return sqltext.escape_invalid_utf8(b)
    except ValueError as exc:
        raise ClickHouseError(62, "SYNTAX_ERROR", f"Syntax error: {exc}") from None


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
        self.registry: _Registry | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._handlers: dict[_Handler, bool] = {}
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
            self._httpd = _Server((self.host, self.port), self)
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
        self.registry = _Registry()
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
            _kill_quietly(self.engine, None)
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

    def _track(self, handler: _Handler, busy: bool) -> None:
        with self._handlers_lock:
            self._handlers[handler] = busy

    def _untrack(self, handler: _Handler) -> None:
        with self._handlers_lock:
            self._handlers.pop(handler, None)
