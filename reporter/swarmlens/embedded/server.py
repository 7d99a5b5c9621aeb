"""The embedded ClickHouse: chDB served over the ClickHouse HTTP interface.

Clients (clickhouse-connect, rotel, curl, the reporter) talk to it exactly as to a
ClickHouse server: `GET/POST /?query=`, bodies as SQL or as INSERT data in any format,
`param_<name>` typed parameters, settings as URL parameters, `database`, `default_format`,
`session_id`, HTTP compression both ways, ClickHouse compressed blocks (`decompress=1`,
`compress=1`), `/ping`, the X-ClickHouse-* response headers and ClickHouse's error texts.

Inserts are buffered whole before they reach the engine, so a client that disconnects
mid-body stores nothing and a retried batch is identical to the first (insert
deduplication then drops it). A valid insert that fails for a reason of the server's (not
of the data) is answered by closing the connection instead of an HTTP error: collectors
retry an aborted connection with the body intact, while some re-send an empty body after
an error status.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import signal
import socket
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from swarmlens import sqltext
from swarmlens.embedded import codecs
from swarmlens.embedded.engine import SETTING_NAME_RE, Connection, Engine
from swarmlens.embedded.errors import DATA_ERROR_CODES, ClickHouseError

log = logging.getLogger("swarmlens.clickhouse")

# URL parameters the HTTP layer consumes itself; every other one is a setting.
_HTTP_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check",
    "query_id", "compress", "decompress", "user", "password", "quota_key", "buffer_size",
    "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "enable_http_compression",
    "http_zlib_compression_level", "client_protocol_version", "add_http_cors_header",
    "http_native_compression_disable_checksumming_on_decompress", "role", "default_database",
}
_CONTENT_TYPES = {
    "JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson",
    "JSONCompactEachRow": "application/x-ndjson", "JSONStrings": "application/json",
    "CSV": "text/csv", "CSVWithNames": "text/csv", "TabSeparated": "text/tab-separated-values",
    "TSV": "text/tab-separated-values", "TabSeparatedWithNames": "text/tab-separated-values",
    "TSVWithNames": "text/tab-separated-values", "Pretty": "text/plain", "XML": "application/xml",
}
_CHUNK = 1 << 20
_INSERT_RETRY_PAUSES = (0.1, 0.5, 1.0, 2.0, 4.0)
_SPOOL_IN_MEMORY = 64 << 20


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _DropConnection(Exception):
    """Abort the request by closing the connection: the client retries the same body."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, endpoint: "EmbeddedClickHouse"):
        self.endpoint = endpoint
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "swarmlens-clickhouse"
    timeout = 300  # seconds a client may stall mid-request before its connection is closed

    # -- plumbing ------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # Small responses must not wait for the peer's delayed ACK (40 ms per query otherwise).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.endpoint: EmbeddedClickHouse = self.server.endpoint  # type: ignore[attr-defined]
        self.endpoint._track(self, busy=False)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.endpoint._untrack(self)

    def log_message(self, fmt: str, *args) -> None:  # route through logging, quietly
        log.debug("%s %s", self.address_string(), fmt % args)

    def parse_request(self) -> bool:
        self.endpoint._track(self, busy=True)
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve(method="GET")

    def do_POST(self) -> None:
        self._serve(method="POST")

    def do_HEAD(self) -> None:
        self._serve(method="HEAD")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "origin, x-requested-with, x-clickhouse-format, "
                         "x-clickhouse-user, x-clickhouse-key, authorization, content-type")
        self.send_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- request -------------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        ep = self.endpoint
        ep._track(self, busy=True)
        if ep._stopping:
            # Served, then closed: the client's next connection is refused, which collectors retry
            # with the batch intact (a connection closed under a sent request loses it in rotel).
            self.close_connection = True
        query_id = None
        try:
            url = urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            if path in ("/ping", "/replicas_status"):
                self._discard_body()
                return self._reply(200, b"Ok.\n", content_type="text/plain; charset=UTF-8", head=method == "HEAD")
            if path not in ("/", "/query"):
                self._discard_body()
                raise ClickHouseError(
                    0, "HTTP_NOT_FOUND",
                    f"There is no handle {url.path}. Use / or /?query= for queries and /ping for health checks",
                    http_status=404)
            params: dict[str, str] = {}
            for k, v in parse_qsl(url.query, keep_blank_values=True):
                params[k] = v
            query_id = params.get("query_id") or str(uuid.uuid4())
            self._authenticate(params)
            self._execute(method, params, query_id)
        except _DropConnection:
            self._drop()
        except ClickHouseError as exc:
            self._error(exc, query_id)
        except Exception as exc:  # a bug of ours must not take the endpoint down
            log.exception("internal error serving %s", self.path[:200])
            self._error(ClickHouseError(1001, "STD_EXCEPTION", f"Internal error: {type(exc).__name__}: {exc}"),
                        query_id)
        finally:
            ep._track(self, busy=False)

    def _authenticate(self, params: dict[str, str]) -> None:
        user = password = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except Exception:
                raise ClickHouseError(516, "AUTHENTICATION_FAILED", "Malformed Basic authorization header") from None
        if self.headers.get("X-ClickHouse-User") is not None:
            user = self.headers.get("X-ClickHouse-User")
            password = self.headers.get("X-ClickHouse-Key", "")
        if "user" in params:
            user = params["user"]
            password = params.get("password", "")
        ep = self.endpoint
        user = user or "default"
        password = password or ""
        ok_user = hmac.compare_digest(user.encode(), ep.user.encode())
        ok_password = hmac.compare_digest(password.encode(), ep.password.encode())
        if not (ok_user and ok_password):
            raise ClickHouseError(516, "AUTHENTICATION_FAILED",
                                  f"{user}: Authentication failed: password is incorrect, or there is no user with such name")

    def _execute(self, method: str, params: dict[str, str], query_id: str) -> None:
        ep = self.endpoint
        url_query = params.get("query", "")
        settings: dict[str, str] = {}
        query_params: dict[str, str] = {}
        for k, v in params.items():
            if k.startswith("param_"):
                query_params[k[6:]] = v
            elif k not in _HTTP_PARAMS:
                if not SETTING_NAME_RE.match(k):
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{k[:100]}'")
                settings[k] = v

        head = sqltext.split_data_insert(url_query) if url_query else None
        body = self._read_body(params) if method == "POST" else None
        data = None
        try:
            if head is not None and head.data_offset < len(url_query):
                # Data inline in the URL query, after the FORMAT clause.
                prefix = url_query[head.data_offset:].encode()
                data = _Spool(prefix, body)
            elif head is not None:
                data = body
            else:
                sql, data, head = self._statement(url_query, body)
            if head is not None:
                sql = head.statement
            if method in ("GET", "HEAD") and not sqltext.is_read_only(sql):
                raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode. For queries over "
                                      "HTTP, method GET implies readonly. You should use method POST for modifying queries")
            if not sql.strip():
                raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
            fmt = None
            if head is None:
                fmt = sqltext.output_format(sql) or params.get("default_format") or \
                    self.headers.get("X-ClickHouse-Format") or "TabSeparated"
            conn, session = self._connection(params)
            try:
                with conn.lock:
                    conn.prepare(params.get("database") or None, settings)
                    started = time.perf_counter_ns()
                    if head is not None:
                        result = self._insert(conn, head, data)
                    else:
                        result = conn.run(sql, fmt, query_params)
                        if session:
                            conn.note_statement(sql)
                    elapsed = time.perf_counter_ns() - started
            finally:
                if not session:
                    ep.engine.release(conn)
        finally:
            if body is not None:
                body.close()
        out = b"" if head is not None else bytes(result.bytes())
        summary = {
            "read_rows": str(_stat(result, "rows_read")), "read_bytes": str(_stat(result, "bytes_read")),
            "written_rows": str(_stat(result, "rows_written")),
            "written_bytes": str(_stat(result, "bytes_written")),
            "total_rows_to_read": "0", "result_rows": "0", "result_bytes": str(len(out)),
            "elapsed_ns": str(elapsed),
        }
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Summary": json.dumps(summary),
                   "X-ClickHouse-Timezone": ep.engine.timezone, "X-ClickHouse-Server-Display-Name": "swarmlens"}
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        if params.get("session_id"):
            headers["X-ClickHouse-Session-Id"] = params["session_id"]
        content_type = (_CONTENT_TYPES.get(fmt or "", "application/octet-stream") + "; charset=UTF-8"
                        if fmt else "text/plain; charset=UTF-8")
        if params.get("compress") == "1" and out:
            out = codecs.native_block_encode(out)
            content_type = "application/octet-stream"
        elif params.get("enable_http_compression") == "1" and out:
            enc = codecs.choose_http_encoding(self.headers.get("Accept-Encoding"))
            if enc:
                out = codecs.http_encode(out, enc)
                headers["Content-Encoding"] = enc
        self._reply(200, out, content_type=content_type, headers=headers, head=method == "HEAD")

    def _statement(self, url_query: str, body: "_Spool | None"):
        """Builds the SQL from the URL query and the body; finds INSERT data in the body."""
        ep = self.endpoint
        if body is None or body.size == 0:
            if len(url_query) > ep.max_query_bytes:
                raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {len(url_query)} bytes")
            return url_query, None, None
        if not url_query:
            prefix = body.read_prefix(ep.max_query_bytes + 1)
            text = prefix.decode("latin-1")  # one char per byte: offsets stay byte offsets
            head = sqltext.split_data_insert(text)
            if head is not None:
                statement = prefix[:len(head.statement)].decode("utf-8", "strict") if _utf8(prefix[:len(head.statement)]) \
                    else None
                if statement is None:
                    raise ClickHouseError(36, "BAD_ARGUMENTS", "The query is not valid UTF-8")
                head.statement = statement
                body.skip = head.data_offset
                return head.statement, body, head
            if body.size > ep.max_query_bytes:
                raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes "
                                      f"(limit {ep.max_query_bytes}); send INSERT data with a FORMAT clause")
            return _decode_sql(prefix), None, None
        if body.size > ep.max_query_bytes:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes")
        return url_query + "\n" + _decode_sql(body.read_prefix(body.size)), None, None

    def _connection(self, params: dict[str, str]) -> tuple[Connection, bool]:
        sid = params.get("session_id")
        if not sid:
            return self.endpoint.engine.acquire(), False
        try:
            timeout = float(params.get("session_timeout") or 60)
        except ValueError:
            raise ClickHouseError(36, "BAD_ARGUMENTS", "Invalid session timeout") from None
        timeout = min(max(timeout, 1.0), 3600.0)
        return self.endpoint.engine.session(sid, timeout, params.get("session_check") == "1"), True

    def _insert(self, conn: Connection, head: sqltext.InsertHead, data: "_Spool | None"):
        """Runs a buffered insert. A failure of the data is the client's to hear about; a failure of
        the server's is retried here with the same bytes (insert deduplication makes a repeat of a
        partly applied attempt harmless), and only when it persists is the connection closed."""
        for attempt, pause in enumerate(_INSERT_RETRY_PAUSES + (None,)):
            inserter = None
            try:
                inserter = conn.conn.send_insert(head.statement, head.format)
                if data is not None:
                    for chunk in data.chunks():
                        inserter.append(chunk)
                return inserter.finish()
            except Exception as exc:
                if inserter is not None:
                    try:
                        inserter.cancel()
                    except Exception:
                        pass
                err = ClickHouseError.from_engine(exc)
                if err.code in DATA_ERROR_CODES:
                    raise err from None
                if pause is None or self.endpoint._stopping:
                    log.error("insert failed %d times for a reason of the server's; closing the connection "
                              "without an answer: %s", attempt + 1, err.message[:500])
                    raise _DropConnection() from None
                log.warning("insert failed for a reason of the server's, retrying in %.1f s: %s",
                            pause, err.message[:300])
                time.sleep(pause)

    # -- bodies --------------------------------------------------------------------------------
    def _raw_chunks(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        rfile = self.rfile
        if "chunked" in te:
            while True:
                line = rfile.readline(1024)
                if not line:
                    raise ConnectionError("client closed the connection mid-body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", "Malformed chunked encoding",
                                          http_status=400) from None
                if size == 0:
                    while True:  # trailers
                        t = rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            return
                yield from self._read_exactly(size)
                rfile.readline(8)
        else:
            length = self.headers.get("Content-Length") or "0"
            if not length.strip().isdigit():
                self.close_connection = True
                raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", "Malformed Content-Length", http_status=400)
            yield from self._read_exactly(int(length))

    def _read_exactly(self, size: int):
        while size:
            piece = self.rfile.read(min(size, _CHUNK))
            if not piece:
                raise ConnectionError("client closed the connection mid-body")
            size -= len(piece)
            yield piece

    def _read_body(self, params: dict[str, str]) -> "_Spool":
        limit = self.endpoint.max_body_bytes
        spool = _Spool()
        try:
            decoders = [codecs.http_decoder(self.headers.get("Content-Encoding"))]
            if params.get("decompress") == "1":
                decoders.append(codecs.NativeBlockDecoder())
            for raw in self._raw_chunks():
                piece = raw
                for d in decoders:
                    piece = d.decompress(piece)
                spool.write(piece, limit)
            tail = b""
            for d in decoders:
                tail = d.decompress(tail) + d.flush() if tail else d.flush()
            spool.write(tail, limit)
        except ClickHouseError:
            spool.close()
            self.close_connection = True  # the rest of the body is unread
            raise
        except (ConnectionError, socket.timeout, TimeoutError):
            spool.close()
            raise _DropConnection() from None
        except Exception as exc:
            spool.close()
            self.close_connection = True
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress the request body: {exc}") from None
        return spool

    def _discard_body(self) -> None:
        if self.command == "POST":
            for _ in self._raw_chunks():
                pass

    # -- responses -----------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
               head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=30")
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in one write.
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(body)
        self.flush_headers()

    def _error(self, exc: ClickHouseError, query_id: str | None) -> None:
        if exc.http_status >= 500 or exc.code in (1001,):
            log.warning("query failed: %s", exc.message[:300])
        headers = {"X-ClickHouse-Exception-Code": str(exc.code)}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        try:
            self._reply(exc.http_status, exc.body(self.endpoint.engine.version if self.endpoint.engine else "?"),
                        content_type="text/plain; charset=UTF-8", headers=headers)
        except (ConnectionError, OSError):
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _stat(result, name: str) -> int:
    try:
        return int(getattr(result, name)())
    except Exception:
        try:
            return int(getattr(result, name))
        except Exception:
            return 0


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _decode_sql(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise ClickHouseError(36, "BAD_ARGUMENTS", "The query is not valid UTF-8") from None


class _Spool:
    """A request body, in memory up to 64 MiB and in a temporary file beyond."""

    def __init__(self, prefix: bytes = b"", rest: "_Spool | None" = None):
        self._f = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
        self.size = 0
        self.skip = 0
        if prefix:
            self.write(prefix, None)
        if rest is not None:
            for chunk in rest.chunks():
                self.write(chunk, None)
            rest.close()

    def write(self, data: bytes, limit: int | None) -> None:
        if not data:
            return
        self.size += len(data)
        if limit is not None and self.size > limit:
            raise ClickHouseError(0, "REQUEST_TOO_LARGE",
                                  f"Request body of more than {limit} bytes; raise SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES "
                                  "or send smaller batches", http_status=413)
        self._f.write(data)

    def read_prefix(self, n: int) -> bytes:
        self._f.seek(0)
        return self._f.read(n)

    def chunks(self):
        self._f.seek(self.skip)
        while True:
            piece = self._f.read(_CHUNK)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._f.close()


class EmbeddedClickHouse:
    """chDB on a data directory, served over the ClickHouse HTTP interface."""

    def __init__(self, data_dir: str, host: str = "127.0.0.1", port: int = 8123, user: str = "default",
                 password: str = "", pool_size: int = 8, max_body_bytes: int = 1 << 30,
                 max_query_bytes: int = 16 << 20):
        if not is_loopback(host) and not password:
            raise ValueError(f"refusing to listen on {host} without a password: set SWARMLENS_CLICKHOUSE_PASSWORD "
                             "or bind to 127.0.0.1")
        self.data_dir = data_dir
        self.host, self.port = host, port
        self.user, self.password = user or "default", password or ""
        self.pool_size = pool_size
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes
        self.engine: Engine | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._handlers: dict[_Handler, bool] = {}
        self._handlers_lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, background: bool = True) -> "EmbeddedClickHouse":
        self.engine = Engine(self.data_dir, pool_size=self.pool_size)
        try:
            self._httpd = _Server((self.host, self.port), _Handler, self)
        except OSError as exc:
            self.engine.close()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self._httpd.server_address[1]
        if background:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="swarmlens-clickhouse", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
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
        while not stop.wait(0.5):
            pass
        self.stop()

    def stop(self, grace: float = 30.0, idle_grace: float = 2.0) -> None:
        """Stops accepting, serves what arrives on open connections for `idle_grace` seconds
        (answering with Connection: close), lets requests in flight finish for up to `grace`
        seconds, then closes the remaining idle connections and the engine."""
        if self._httpd is None:
            return
        self._stopping = True
        self._httpd.shutdown()
        self._httpd.server_close()  # new connections are refused from here on
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            with self._handlers_lock:
                busy = [h for h, b in self._handlers.items() if b]
                idle = [h for h, b in self._handlers.items() if not b]
            if not busy and (not idle or waited >= idle_grace):
                break
            if waited >= grace:
                break
            time.sleep(0.02)
        for h in idle + busy:
            h._drop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.engine is not None:
            self.engine.close()
        self._httpd = None

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
