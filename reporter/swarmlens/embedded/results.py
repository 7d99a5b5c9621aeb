"""Results: how a query's answer leaves, whole or streamed, with ClickHouse's headers.

Owns the response to one query: the engine's streaming of a SELECT (chunks leave as the engine
produces them, or are spooled first with `wait_end_of_query=1`), a mid-stream exception in the
server's tagged format, a result formatted whole, the X-ClickHouse-* headers (query id, format,
progress, summary), the content type of each format, and the response's compression (HTTP
compression or ClickHouse compressed blocks with `compress=1`).
"""

from __future__ import annotations

import json
import secrets
import time

import h11

from swarmlens.embedded import codecs
from swarmlens.embedded.cancel import Running, kill_quietly
from swarmlens.embedded.engine import Connection, Engine
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.request import CONTROL_RE, Closed, Spool, int_param
from swarmlens.embedded.sandbox import Statement

_CONTENT_TYPES = {
    "JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson",
    "JSONCompactEachRow": "application/x-ndjson", "JSONStrings": "application/json",
    "CSV": "text/csv", "CSVWithNames": "text/csv", "TabSeparated": "text/tab-separated-values",
    "TSV": "text/tab-separated-values", "TabSeparatedWithNames": "text/tab-separated-values",
    "TSVWithNames": "text/tab-separated-values", "Pretty": "text/plain", "XML": "application/xml",
}
_CONTENT_TYPES_LOWER = {k.lower(): v for k, v in _CONTENT_TYPES.items()}
_MAX_PROGRESS_HEADERS = 100
# Output formats whose chunks concatenate into one valid result: these stream as the engine produces
# them. Every other format (JSON, *WithNames, Arrow, Parquet, Pretty, XML...) has one header, footer
# or file structure per result, so the engine formats it whole.
STREAMABLE_FORMATS = frozenset(f.lower() for f in (
    "Native", "RowBinary", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV", "JSONEachRow",
    "JSONLines", "NDJSON", "JSONCompactEachRow", "JSONStringsEachRow", "JSONCompactStringsEachRow", "Values",
    "RawBLOB", "LineAsString", "Null", "BSONEachRow", "MsgPack", "CustomSeparated",
    # one event per line; the engine repeats the meta line in every chunk, which is dropped after the first
    "JSONEachRowWithProgress", "JSONStringsEachRowWithProgress", "JSONCompactEachRowWithProgress",
    "JSONCompactStringsEachRowWithProgress",
))


def encode_headers(hs) -> list[tuple[bytes, bytes]]:
    # A value a client chose (query id, session id) can never end the header early: the ids are
    # refused with control characters in them, and anything that slips through is blanked here.
    return [(k.encode("latin-1"), CONTROL_RE.sub("?", v).strip().encode("latin-1", "replace")) for k, v in hs]


class EngineStream:
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
            kill_quietly(self.engine, [self.tag])
            self._low.streaming_cancel_query(self._res)


def zlib_level(params: dict) -> int | None:
    level = int_param(params, "http_zlib_compression_level", -1)
    if level == -1:
        return None
    if not 1 <= level <= 9:
        raise ClickHouseError(36, "BAD_ARGUMENTS", f"http_zlib_compression_level must be 1 to 9, not {level}")
    return level


class Results:
    """The answer to one query on its connection. `release(ok)` ends the request's hold on its query
    id, session and connection; it is called just before the last bytes of a response leave, so a
    client that sends its next request the moment it has the answer finds the session free."""

    def __init__(self, handler, req, params: dict[str, str], query_id: str, release):
        self.h = handler
        self.ep = handler.ep
        self.req = req
        self.params = params
        self.query_id = query_id
        self._release = release
        self.released = False
        self.progress: list[dict] = []
        self.summary: dict = {}
        self.spoilt = False  # the engine connection saw a stream fail or cancelled: never pool it

    def release(self, ok: bool) -> None:
        self.released = True
        self._release(ok)

    def progress_cb(self):
        interval = int_param(self.params, "http_headers_progress_interval_ms", 100) / 1000.0
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

    def headers(self, fmt: str | None, result_rows: int | None, result_bytes: int, elapsed_ns: int,
                stats=None, written=(0, 0)) -> list[tuple[str, str]]:
        s = self.summary
        summary = {
            "read_rows": str(stat(stats, "storage_rows_read", s.get("read_rows", 0))),
            "read_bytes": str(stat(stats, "storage_bytes_read", s.get("read_bytes", 0))),
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
        if int_param(self.params, "send_progress_in_http_headers") == 1:
            for p in self.progress:
                headers.append(("X-ClickHouse-Progress", json.dumps(_progress_json(p), separators=(",", ":"))))
        headers.append(("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":"))))
        return headers

    def content_type(self, fmt: str | None) -> str:
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
        if int_param(self.params, "enable_http_compression") == 1:
            enc = codecs.choose_http_encoding(self.req.header("accept-encoding"))
            if enc:
                return enc, codecs.HttpEncoder(enc, zlib_level(self.params))
        return None, None

    def _encode(self, kind, enc, chunk: bytes) -> bytes:
        if kind == "native":
            return codecs.native_block_encode(chunk) if chunk else b""
        if enc is not None:
            return enc.compress(chunk)
        return chunk

    def send_whole(self, body: bytes | Spool, fmt, headers) -> None:
        self.release(ok=True)  # the result is complete: free the session before the client has it
        kind, enc = self._encoder()
        ctype = "application/octet-stream" if kind == "native" and fmt else self.content_type(fmt)
        if kind and kind != "native":
            headers.append(("Content-Encoding", kind))
        if isinstance(body, Spool):
            if kind is None:
                h = self.h
                hs = [("Content-Type", ctype), *headers, *h._base_headers(False), ("Content-Length", str(body.size))]
                h.send_event(h11.Response(status_code=200, headers=encode_headers(hs)))
                if self.req.method != "HEAD":
                    for chunk in body.chunks():
                        h.send_event(h11.Data(data=chunk))
                h.send_event(h11.EndOfMessage())
                return
            data = b"".join(self._encode(kind, enc, c) for c in body.chunks()) + (enc.finish() if enc else b"")
        else:
            data = self._encode(kind, enc, body) + (enc.finish() if enc and body else b"") if body else b""
        self.h.reply(200, data, ctype, headers, head=self.req.method == "HEAD")

    def finish_empty(self, fmt) -> None:
        self.send_whole(b"", fmt, self.headers(fmt, 0, 0, 0))

    def run_whole(self, conn: Connection, sql: str, fmt, qparams, st: Statement) -> None:
        conn.conn.set_progress_callback(self.progress_cb())
        started = time.perf_counter_ns()
        try:
            result = conn.run(sql, fmt or "TabSeparated", qparams)
        finally:
            conn.conn.set_progress_callback(None)
        elapsed = time.perf_counter_ns() - started
        out = bytes(result.bytes()) if st.returns_rows else b""
        rows = stat(result, "rows_read", 0) if st.returns_rows else 0
        headers = self.headers(fmt, rows, len(out), elapsed, stats=result,
                               written=(stat(result, "rows_written", 0), stat(result, "bytes_written", 0)))
        self.send_whole(out, fmt, headers)

    def stream(self, conn: Connection, sql: str, fmt: str, qparams, running: Running) -> None:
        """A SELECT: chunks leave as the engine produces them, or are spooled first when the client
        asked for wait_end_of_query=1 (then the summary is complete and an error keeps its status)."""
        h = self.h
        conn.conn.set_progress_callback(self.progress_cb())
        started = time.perf_counter_ns()
        rows = nbytes = 0
        stream = None
        try:
            try:
                stream = EngineStream(self.ep.engine, conn, sql, fmt, qparams)
                running.stream = stream
                if running.cancelled.is_set():
                    stream.cancel()
                first = stream.fetch()
            except Exception as exc:
                raise self.engine_error(exc, running) from None
            if first is None and running.cancelled.is_set():
                # killed before its first block (an aggregate): an error, never an empty result
                self.spoilt = True
                raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
            wait = int_param(self.params, "wait_end_of_query") == 1
            if wait:
                spool = Spool()
                try:
                    chunk = first
                    while chunk is not None:
                        b = chunk.bytes()
                        rows += stat(chunk, "rows_read", 0)
                        nbytes += len(b)
                        spool.write(b)
                        try:
                            chunk = stream.fetch()
                        except Exception as exc:
                            raise self.engine_error(exc, running) from None
                    if running.cancelled.is_set():
                        raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
                    headers = self.headers(fmt, rows, nbytes, time.perf_counter_ns() - started)
                    self.send_whole(spool, fmt, headers)
                finally:
                    spool.close()
                return
            # Streamed: the status and headers leave with the first chunk; a later error is written
            # into the body in the server's tagged format.
            kind, enc = self._encoder()
            tag = secrets.token_hex(8)
            headers = self.headers(fmt, None, 0, time.perf_counter_ns() - started)
            headers.append(("X-ClickHouse-Exception-Tag", tag))
            if kind and kind != "native":
                headers.append(("Content-Encoding", kind))
            ctype = "application/octet-stream" if kind == "native" else self.content_type(fmt)
            hs = [("Content-Type", ctype), *headers, *h._base_headers(False)]
            h.send_event(h11.Response(status_code=200, headers=encode_headers(hs)))
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
                        err = self.engine_error(exc, running)
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
                self.release(ok=not self.spoilt)
                h.send_event(h11.EndOfMessage())
            except Closed:
                running.cancel()
                raise
        finally:
            if stream is not None and not stream.finished:
                self.spoilt = True
                try:
                    stream.cancel()
                except Exception:
                    pass
            if not self.released:
                conn.conn.set_progress_callback(None)

    def engine_error(self, exc: Exception, running: Running) -> ClickHouseError:
        self.spoilt = True
        if running.cancelled.is_set():
            return ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
        text = str(exc)
        if text.startswith("Streaming query failed: "):
            text = text[len("Streaming query failed: "):]
        return ClickHouseError.from_engine(RuntimeError(text))


def _progress_json(p: dict) -> dict:
    keys = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read", "result_rows",
            "result_bytes", "elapsed_ns")
    return {k: str(p.get(k, 0)) for k in keys}


def stat(result, name: str, default=0) -> int:
    if result is None:
        return int(default or 0)
    try:
        v = getattr(result, name)
        return int(v() if callable(v) else v)
    except Exception:
        return int(default or 0)
