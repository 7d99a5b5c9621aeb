"""HTTP handling: one client connection, its requests one after another, and their routing.

HTTP framing (request parsing, chunked bodies, keep-alive, chunked responses) is h11's; this
module keeps the connection's loop (idle and stall timeouts, keep-alive, a malformed request
answered 400 and the connection closed), the routes (`/ping`, `/replicas_status`, `/` and
`/query`, CORS preflight), authentication (Basic, X-ClickHouse-User/Key, `user`/`password`),
the X-ClickHouse-* base headers and error answers in ClickHouse's format. A query is handed to
execution.py.
"""

from __future__ import annotations

import base64
import logging
import socket
import socketserver
import uuid
from urllib.parse import parse_qsl, urlsplit

import h11

from swarmlens.embedded import codecs
from swarmlens.embedded.access import Principal
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.execution import Execution
from swarmlens.embedded.request import CONTROL_RE, Closed, Drop, Request
from swarmlens.embedded.results import encode_headers

log = logging.getLogger(__name__)

_RECV = 1 << 20
_MAX_HEADER_BYTES = 1 << 20  # request line and headers, as a server's http_max_uri_size
IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may sit idle


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, endpoint):
        self.endpoint = endpoint
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address) -> None:
        # a defect of ours that escaped a connection's handler: into the log, with its traceback
        log.exception("internal error on a connection from %s", client_address[0])


class Handler(socketserver.BaseRequestHandler):
    """One client connection: requests one after another (keep-alive), each served in full."""

    def setup(self) -> None:
        self.sock: socket.socket = self.request
        # Small responses must not wait for the peer's delayed ACK (40 ms per query otherwise).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ep = self.server.endpoint  # type: ignore[attr-defined]
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
                raise Closed() from None
            except OSError:
                raise Closed() from None
            self.conn.receive_data(data)

    def send_event(self, ev) -> None:
        data = self.conn.send(ev)
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                raise Closed() from None

    def drop(self) -> None:
        self.close_after = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle(self) -> None:
        while True:
            self.sock.settimeout(IDLE_TIMEOUT)
            try:
                ev = self.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            except Closed:
                return
            if isinstance(ev, h11.ConnectionClosed) or not isinstance(ev, h11.Request):
                return
            self.ep._track(self, busy=True)
            req = Request(self, ev)
            self.head_request = req.method == "HEAD"
            try:
                self._serve(req)
            except Drop:
                self.drop()
                return
            except Closed:
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
            except (h11.LocalProtocolError, h11.RemoteProtocolError, Closed):
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
            h.append(("Keep-Alive", f"timeout={int(IDLE_TIMEOUT)}"))
        return h

    def reply(self, status: int, body: bytes, content_type: str, headers: list | None = None,
              head: bool = False, close: bool = False) -> None:
        hs = [("Content-Type", content_type), *(headers or []), *self._base_headers(close),
              ("Content-Length", str(len(body)))]
        self.send_event(h11.Response(status_code=status, headers=encode_headers(hs)))
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
    def _serve(self, req: Request) -> None:
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
                if CONTROL_RE.search(params.get(name) or ""):
                    raise ClickHouseError(36, "BAD_ARGUMENTS", f"The {name} must not contain control characters")
            query_id = params.get("query_id") or str(uuid.uuid4())
            if params.get("enable_http_compression") in ("1", "true"):
                self.error_encoding = codecs.choose_http_encoding(req.header("accept-encoding"))
            who = self._authenticate(req, params)
            Execution(self, req, params, query_id, who).run()
        except ClickHouseError as exc:
            if req.has_body and not req.body_done:
                self.close_after = True  # the rest of the body is unread
            self._send_error(exc, query_id, close=self.close_after)
        except (Drop, Closed, h11.RemoteProtocolError):
            raise
        except Exception as exc:  # a bug of ours must not take the endpoint down
            log.exception("internal error serving %s", req.target[:200])
            self.close_after = True
            try:
                self._send_error(ClickHouseError(1001, "STD_EXCEPTION", f"Internal error: {type(exc).__name__}: {exc}"),
                                 query_id, close=True)
            except Exception:
                self.drop()

    def _authenticate(self, req: Request, params: dict[str, str]) -> Principal:
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
