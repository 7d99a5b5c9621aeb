"""What a request asks for: its HTTP head and body, and the query, settings, parameters and data in them.

Owns the ClickHouse reading of a request: URL parameters (the HTTP layer's own ones, `param_<name>`
query parameters, every other one a setting), `multipart/form-data` (fields as URL parameters,
file parts as external data tables), the body decoded while it streams (Content-Encoding, then
ClickHouse compressed blocks with `decompress=1`) within the body and query size limits, and the
statement built from the URL query and the body, INSERT data split off. Nothing here runs a query.
"""

from __future__ import annotations

import re
import tempfile

import h11

from swarmlens import sqltext
from swarmlens.embedded import codecs
from swarmlens.embedded.errors import ClickHouseError

# URL parameters the HTTP layer consumes itself; every other one is a setting (as on a server).
HTTP_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "close_session",
    "query_id", "compress", "decompress", "user", "password", "quota_key", "buffer_size", "stacktrace",
    "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "enable_http_compression", "replace_running_query",
    "http_zlib_compression_level", "client_protocol_version", "add_http_cors_header", "readonly",
    "http_native_compression_disable_checksumming_on_decompress", "role", "default_database",
    "http_response_buffer_size", "http_wait_end_of_query", "output_format_parallel_formatting",
}
_SPOOL_IN_MEMORY = 32 << 20
STALL_TIMEOUT = 300.0  # seconds a client may stall mid-request
_FORM_SLICE = 16 << 10  # bytes handed to the multipart decoder at a time
FORMAT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Drop(Exception):
    """Abort the request by closing the connection: the client retries the same body."""


class Closed(Exception):
    """The client went away."""


class Request:
    """One HTTP request on a connection: its head, and its body as a stream of bytes."""

    def __init__(self, handler, event: h11.Request):
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
        h.sock.settimeout(STALL_TIMEOUT)
        while True:
            ev = h.next_event()
            if isinstance(ev, h11.Data):
                if ev.data:
                    yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self.body_done = True
                return
            elif isinstance(ev, h11.ConnectionClosed):
                raise Closed()

    def discard_body(self) -> None:
        for _ in self.body_chunks():
            pass


class Spool:
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


def int_param(params: dict, name: str, default: int = 0) -> int:
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


def read_form(ep, req: Request, params: dict[str, str], external: list) -> None:
    """multipart/form-data: fields are URL parameters (query, param_*, settings); file parts are
    external data tables, named by the part, appended to `external` as (name, options, spool)."""
    from werkzeug.exceptions import RequestEntityTooLarge
    from werkzeug.http import parse_options_header
    from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

    _, opts = parse_options_header(req.header("content-type"))
    boundary = (opts.get("boundary") or "").encode("latin-1")
    if not boundary:
        raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", "multipart/form-data without a boundary",
                              http_status=400)
    limit = ep.max_body_bytes
    decoder = MultipartDecoder(boundary, max_form_memory_size=ep.max_query_bytes, max_parts=1000)
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
                current = (ev.name, True, Spool())
                external.append((ev.name, {"filename": ev.filename}, current[2]))
            elif isinstance(ev, Data) and current is not None:
                name, is_file, buf = current
                if is_file:
                    buf.write(ev.data, limit)
                else:
                    buf += ev.data
                    if len(buf) > ep.max_query_bytes:
                        raise ClickHouseError(62, "SYNTAX_ERROR", f"Form field {name[:50]} is too large")
                if not ev.more_data and not is_file:
                    params[name] = bytes(buf).decode("utf-8", "replace")

    try:
        done = False
        for chunk in req.body_chunks():
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
    except (Closed, Drop, h11.RemoteProtocolError):
        raise
    except RequestEntityTooLarge:
        raise ClickHouseError(0, "REQUEST_TOO_LARGE", "multipart/form-data beyond its limits: at most 1000 parts, "
                              f"and a field of at most {ep.max_query_bytes} bytes "
                              "(SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES); send large data as a file part",
                              http_status=413) from None
    except Exception as exc:
        raise ClickHouseError(0, "BAD_REQUEST_PARAMETER", f"Malformed multipart/form-data body: {exc}",
                              http_status=400) from None


def read_body(ep, req: Request, params: dict[str, str]) -> Spool:
    """The request body, decoded (Content-Encoding, then ClickHouse blocks with decompress=1) while it
    streams, within the body limit."""
    limit = ep.max_body_bytes
    spool = Spool()
    try:
        decoders = [codecs.http_decoder(req.header("content-encoding"))]
        if params.get("decompress") == "1":
            decoders.append(codecs.NativeBlockDecoder())

        def through(pieces, i):
            if i == len(decoders):
                yield from pieces
                return
            d = decoders[i]
            for p in pieces:
                yield from through(d.feed(p), i + 1)

        for raw in req.body_chunks():
            for piece in through([raw], 0):
                spool.write(piece, limit)
        for i, d in enumerate(decoders):
            for piece in through(d.finish(), i + 1):
                spool.write(piece, limit)
    except (ClickHouseError, Closed, h11.RemoteProtocolError):
        # a broken framing (or a body cut short) is malformed HTTP, not a compression error
        spool.close()
        raise
    except Exception as exc:
        spool.close()
        raise ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress the request body: {exc}") from None
    return spool


def statement(ep, url_query: str, body: Spool | None):
    """Builds the SQL from the URL query and the body; finds INSERT data in the body."""
    if body is None or body.size == 0:
        if len(url_query) > ep.max_query_bytes:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {len(url_query)} bytes")
        return url_query, None, None
    if not url_query:
        prefix = body.read_prefix(ep.max_query_bytes + 1)
        text = prefix.decode("latin-1")  # one char per byte: offsets stay byte offsets
        head = sqltext.split_data_insert(text)
        if head is not None:
            head.statement = decode_sql(prefix[:len(head.statement)])
            body.skip = head.data_offset
            return head.statement, body, head
        if body.size > ep.max_query_bytes:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes "
                                  f"(limit {ep.max_query_bytes}); send INSERT data with a FORMAT clause")
        return decode_sql(prefix), None, None
    if body.size > ep.max_query_bytes:
        raise ClickHouseError(62, "SYNTAX_ERROR", f"Max query size exceeded: {body.size} bytes")
    return url_query + "\n" + decode_sql(body.read_prefix(body.size)), None, None


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def decode_sql(b: bytes) -> str:
    try:
        return sqltext.escape_invalid_utf8(b)
    except ValueError as exc:
        raise ClickHouseError(62, "SYNTAX_ERROR", f"Syntax error: {exc}") from None
