"""The OTLP front: OTLP/HTTP (POST /v1/traces, GET /health and /metrics) and OTLP/gRPC (TraceService/Export).

Both take a request's bytes, within MAX_REQUEST_BYTES after decompression, and hand them to
``Ingest.accept`` (server.py), which logs them durably; they answer what it returns, or the status
its refusal calls for (400 malformed, 413 too large, 415 an unknown content type, 503 / UNAVAILABLE
while the log is full or its disk refuses, with Retry-After).
"""

from __future__ import annotations

import logging
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from swarmlens.ingest import otlp
from swarmlens.ingest.wal import WalFull, WalUnavailable

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 << 20            # after decompression, as rotel's and the contrib receiver's gRPC limit
TRACES_PATH = "/v1/traces"
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ingest: object  # server.Ingest


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "swarmlens-ingest"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
                headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/", "/health"):
            self._answer(200, b"ok\n")
        elif self.path.split("?", 1)[0] == "/metrics":
            self._answer(200, self.server.ingest.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._answer(404, b"not found\n")

    def do_POST(self):
        ingest = self.server.ingest
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            self._answer(411, b"Content-Length required\n")
            return
        size = int(length)
        if size > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._answer(413, f"request body over {MAX_REQUEST_BYTES} bytes\n".encode())
            return
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            return
        if path != TRACES_PATH:
            self._answer(404, f"only traces are taken here, at POST {TRACES_PATH}\n".encode())
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        try:
            body = _decompress(body, encoding)
        except _TooLarge as exc:
            ingest.stats.add(requests_refused=1)
            self._answer(413, f"{exc}\n".encode())
            return
        except ValueError as exc:
            ingest.stats.add(requests_refused=1)
            self._answer(400, f"{exc}\n".encode())
            return
        content_type = (self.headers.get("Content-Type") or "application/x-protobuf").split(";")[0].strip().lower()
        if content_type not in ("application/x-protobuf", "application/protobuf", "application/json"):
            ingest.stats.add(requests_refused=1)
            self._answer(415, b"send application/x-protobuf or application/json\n")
            return
        try:
            decoded = ingest.accept(body, content_type)
        except otlp.BadRequest as exc:
            ingest.stats.add(requests_refused=1)
            self._answer(400, f"{exc}\n".encode())
            return
        except (WalFull, WalUnavailable) as exc:
            ingest.stats.add(requests_refused=1)
            if isinstance(exc, WalUnavailable):
                ingest.stats.error(f"write-ahead log: {exc}")
            self._answer(503, f"{exc}; retry later\n".encode(), headers={"Retry-After": "5"})
            return
        except OSError as exc:  # the disk: nothing was acknowledged, the sender retries
            log.error("cannot write the write-ahead log: %s", exc)
            ingest.stats.error(f"write-ahead log: {exc}")
            self._answer(503, b"cannot store the request now; retry later\n", headers={"Retry-After": "5"})
            return
        if content_type == "application/json":
            from google.protobuf import json_format

            self._answer(200, json_format.MessageToJson(decoded.response()).encode(), "application/json")
        else:
            self._answer(200, decoded.response().SerializeToString(), "application/x-protobuf")


class _TooLarge(ValueError):
    pass


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r} (gzip, deflate or none)")
    d = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = d.decompress(body, MAX_REQUEST_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"the {encoding} body is corrupt: {exc}") from None
    if len(out) > MAX_REQUEST_BYTES or d.unconsumed_tail:
        raise _TooLarge(f"the body decompresses to more than {MAX_REQUEST_BYTES} bytes")
    return out


def start_grpc(ingest, host: str, port: int):
    """OTLP/gRPC on host:port (0: any free port): the started server and its port."""
    import grpc

    def export(request: bytes, context) -> bytes:
        try:
            decoded = ingest.accept(request, "application/x-protobuf")
        except otlp.BadRequest as exc:
            ingest.stats.add(requests_refused=1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (WalFull, WalUnavailable) as exc:
            ingest.stats.add(requests_refused=1)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return decoded.response().SerializeToString()

    handler = grpc.method_handlers_generic_handler(GRPC_SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(export)})  # raw bytes in and out: we decode ourselves
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=(handler,),
                         options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                  ("grpc.so_reuseport", 0)])
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    chosen = server.add_insecure_port(bind)
    if not chosen:
        raise OSError(f"cannot listen for OTLP/gRPC on {bind}")
    server.start()
    return server, chosen
