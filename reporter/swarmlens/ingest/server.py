"""`swarmlens ingest`: the OTLP receiver of the single-machine stack, crash-safe.

    receive (OTLP/HTTP :4318, OTLP/gRPC :4317)
      → decode, repair bad values, drop unstorable spans (counted)      swarmlens.ingest.otlp
      → append to the write-ahead log, fsync                             swarmlens.ingest.wal
      → acknowledge (200 / OK, with partial_success when spans were dropped)
    every batch interval: seal the current segment
      → INSERT INTO otel_traces with the segment's deduplication token
      → delete the segment once ClickHouse has committed it

An acknowledged span is on disk before the sender hears so, and leaves the disk only once
ClickHouse holds it. A sender that never heard the answer (this process was killed after the
fsync) sends the same bytes again: the digest of every request logged in the last ten minutes is
kept, on disk too, so the retry is acknowledged without being logged twice; a repeated insert of the same segment (after a crash of this process or of
ClickHouse mid-insert) carries the same ``insert_deduplication_token``, and
``deduplicate_blocks_in_dependent_materialized_views`` makes every view drop the repeat as well, or
fill in what the crash cut off.

A ClickHouse outage or stall delays inserts and nothing else: the log keeps taking requests up to
SWARMLENS_INGEST_MAX_BACKLOG_BYTES, beyond which senders get 503 / UNAVAILABLE and retry.
The process writes its counters to ``DATA_DIR/ingest/status.json`` every second for `swarmlens status`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections import Counter
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping

from swarmlens.ingest import otlp
from swarmlens.ingest.wal import Segment, WalFull, WriteAheadLog

log = logging.getLogger("swarmlens.ingest")

MAX_REQUEST_BYTES = 16 << 20            # after decompression, as rotel's and the contrib receiver's gRPC limit
TRACES_PATH = "/v1/traces"
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
# ClickHouse codes after which a segment is retried: the schema is not there yet (migrations running).
_RETRY_FOREVER_CODES = {60, 81}
_POISON_ATTEMPTS = 5


PAUSE_FILE = "pause"
DIGEST_BYTES = 16
INSERT_ROWS = 20_000
# How long the digest of a logged request is kept to recognise a sender's retry of it (the SDKs
# give up on a request after 10 s by default; a slow retry chain stays well inside this).
RETRY_WINDOW = 600.0


class RecentRequests:
    """Digests of the requests logged in the last RETRY_WINDOW seconds, kept across restarts: the
    log's own records while they wait, then a small file of digests per inserted segment."""

    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Condition()
        self._seen: dict[bytes, float] = {}
        self._pending: set[bytes] = set()
        now = time.time()
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            try:
                if not name.endswith(".digests") or now - os.path.getmtime(path) > RETRY_WINDOW:
                    os.unlink(path)
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for i in range(0, len(data) - DIGEST_BYTES + 1, DIGEST_BYTES):
                self._seen[data[i:i + DIGEST_BYTES]] = os.path.getmtime(path)

    def seen(self, digest: bytes) -> None:
        with self._lock:
            self._seen[digest] = time.time()

    def claim(self, digest: bytes) -> bool:
        """True when the caller is to log this request; False when it is logged already. A copy
        that arrives while the first is being logged waits for the outcome."""
        with self._lock:
            while digest in self._pending:
                self._lock.wait(5)
            if digest in self._seen:
                return False
            self._pending.add(digest)
            return True

    def release(self, digest: bytes, logged: bool) -> None:
        with self._lock:
            self._pending.discard(digest)
            if logged:
                self._seen[digest] = time.time()
            self._lock.notify_all()

    def remember_inserted(self, segment: Segment, digests: list[bytes]) -> None:
        """Before a segment is deleted: its digests, on disk."""
        path = os.path.join(self.directory, f"{segment.name}.digests")
        with open(path + ".tmp", "wb") as f:
            f.write(b"".join(digests))
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)

    def prune(self) -> None:
        if time.monotonic() - getattr(self, "_pruned", 0.0) < 10:
            return
        self._pruned = time.monotonic()
        cutoff = time.time() - RETRY_WINDOW
        with self._lock:
            for d in [d for d, t in self._seen.items() if t < cutoff]:
                del self._seen[d]
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                if os.path.getmtime(path) < cutoff:
                    os.unlink(path)
            except OSError:
                pass


STATUS_FILE = "status.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _pause_holder(directory: str) -> int | None:
    """The pid that asked the inserter to hold back, if it still lives."""
    try:
        with open(os.path.join(directory, PAUSE_FILE), encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and _alive(pid) else None


def read_status(directory: str) -> dict:
    try:
        with open(os.path.join(directory, STATUS_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def inserts_paused(directory: str, timeout: float = 60.0):
    """Holds back the inserts of the receiver of ``directory`` (it keeps acknowledging into its log)
    for the time of the block, so that nothing writes the span table meanwhile. Waits until an
    insert in flight has finished; returns at once when no receiver runs there."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, PAUSE_FILE)
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    try:
        deadline = time.monotonic() + timeout
        while True:
            st = read_status(directory)
            if not st or not _alive(int(st.get("pid") or 0)) or st.get("paused"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the OTLP receiver did not hold its inserts back within "
                                   f"{timeout:.0f} s (is an insert stuck?)")
            time.sleep(0.1)
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class Stats:
    """Counters since the process started, written to status.json."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.repairs: Counter = Counter()
        self.started = time.time()
        self.last_insert_at: float | None = None
        self.last_error: str = ""
        self.last_error_at: float | None = None

    def add(self, **kv: int) -> None:
        with self.lock:
            self.counts.update(kv)

    def error(self, message: str) -> None:
        with self.lock:
            self.last_error, self.last_error_at = message, time.time()


class Ingest:
    """The receiver, the log and the inserter of one data directory."""

    def __init__(self, config: Mapping[str, Any], directory: str, batch_seconds: float = 0.2,
                 max_backlog_bytes: int = 1 << 30):
        self.config = config
        self.directory = directory
        self.batch_seconds = batch_seconds
        self.wal = WriteAheadLog(os.path.join(directory, "wal"), max_bytes=max_backlog_bytes)
        self.rejected_dir = os.path.join(directory, "rejected")
        self.stats = Stats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None
        self._grpc = None
        self.database = config["SWARMLENS_OTEL_DATABASE"]
        self.paused = False
        self.recent = RecentRequests(os.path.join(directory, "inserted"))
        for segment in self.wal.sealed():
            for record in self.wal.records(segment):
                self.recent.seen(record[:DIGEST_BYTES])

    # -- receiving ------------------------------------------------------------------------------
    def accept(self, body: bytes, content_type: str) -> otlp.Decoded:
        """Decodes (raising otlp.BadRequest), logs durably (raising WalFull), and returns what to answer.

        A request whose bytes were already logged in the last RETRY_WINDOW seconds is a sender's
        retry of a request whose answer it never got (a crash after the fsync, a timeout): it is
        acknowledged again and not logged twice, so its spans are stored once."""
        decoded = otlp.decode(body, content_type)
        if decoded.spans:
            digest = hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest()
            if self.recent.claim(digest):
                payload = decoded.request.SerializeToString() if (decoded.repairs or "json" in content_type) else body
                try:
                    self.wal.append(digest + payload)
                except BaseException:
                    self.recent.release(digest, logged=False)
                    raise
                self.recent.release(digest, logged=True)
            else:
                self.stats.add(duplicate_requests=1)
                decoded.spans = 0
        decoded.repairs += Counter()  # drops the zero counts
        with self.stats.lock:
            self.stats.counts.update(requests=1, spans_accepted=decoded.spans)
            self.stats.repairs.update(decoded.repairs)
        if decoded.repairs:
            log.warning("request repaired: %s", dict(decoded.repairs))
        return decoded

    # -- inserting ------------------------------------------------------------------------------
    def _inserter(self) -> None:
        from swarmlens.store.client import StoreError, StoreUnavailable, connect

        client = None
        pause = 0.5
        failures: Counter = Counter()
        while True:
            stopping = self._stop.wait(self.batch_seconds)
            self.wal.seal()
            self.recent.prune()
            if self._hold_back(stopping):
                continue
            for segment in self.wal.sealed():
                if self._hold_back(stopping):
                    break
                while True:
                    try:
                        if client is None:
                            client = connect(self.config)
                        self._insert_segment(client, segment)
                        pause = 0.5
                        failures.pop(segment.seq, None)
                        break
                    except StoreError as exc:
                        code = getattr(exc, "code", None)
                        self.stats.error(f"insert of segment {segment.seq} failed: {exc}")
                        self.stats.add(insert_failures=1)
                        log.warning("insert of segment %d failed (will retry in %.1f s): %s", segment.seq, pause, exc)
                        if isinstance(exc, StoreUnavailable) or code is None:
                            if client is not None:
                                try:
                                    client.close()
                                except Exception:
                                    pass
                                client = None
                        elif code not in _RETRY_FOREVER_CODES:
                            failures[segment.seq] += 1
                            if failures[segment.seq] >= _POISON_ATTEMPTS:
                                self._quarantine(segment, str(exc))
                                break
                        if self._stop.wait(pause):
                            return  # stopping: what is left stays in the log for the next start
                        pause = min(pause * 2, 10.0)
                    except Exception as exc:  # a connection dropped mid-insert, and the like
                        self.stats.error(f"insert of segment {segment.seq} failed: {exc!r}")
                        self.stats.add(insert_failures=1)
                        log.warning("insert of segment %d failed (will retry in %.1f s): %r", segment.seq, pause, exc)
                        client = None
                        if self._stop.wait(pause):
                            return  # stopping: what is left stays in the log for the next start
                        pause = min(pause * 2, 10.0)
            if stopping:
                return

    def _hold_back(self, stopping: bool) -> bool:
        """True while `inserts_paused` holds the inserts back (a rollup check runs)."""
        held = _pause_holder(self.directory) is not None and not stopping
        if held != self.paused:
            self.paused = held
            log.info("inserts %s", "held back for a rollup check" if held else "resumed")
            self.write_status()
        return held

    def _insert_segment(self, client, segment: Segment) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        from swarmlens.store.client import raise_as_store_error

        records = self.wal.records(segment)
        rows: list[list[Any]] = []
        inserted = chunk = 0

        def flush() -> None:
            # A segment that grew large (ClickHouse was behind) goes in as several inserts of at most
            # INSERT_ROWS rows, which bounds this process's memory. The chunks fall at the same record
            # boundaries on every attempt, so each keeps its own token across a crash.
            nonlocal rows, inserted, chunk
            token = self.wal.token(segment) + (f"-{chunk}" if chunk else "")
            try:
                client.insert("otel_traces", rows, column_names=list(otlp.COLUMNS), database=self.database,
                              settings={"insert_deduplicate": 1, "insert_deduplication_token": token,
                                        "deduplicate_blocks_in_dependent_materialized_views": 1,
                                        "async_insert": 0})
            except Exception as exc:
                raise_as_store_error(exc)
            inserted += len(rows)
            chunk += 1
            rows = []

        for record in records:
            rows.extend(otlp.to_rows(ExportTraceServiceRequest.FromString(record[DIGEST_BYTES:])))
            if len(rows) >= INSERT_ROWS:
                flush()
        if rows:
            flush()
        self.recent.remember_inserted(segment, [r[:DIGEST_BYTES] for r in records])
        self.wal.remove(segment)
        with self.stats.lock:
            self.stats.counts.update(spans_inserted=inserted, segments_inserted=1)
            self.stats.last_insert_at = time.time()

    def _quarantine(self, segment: Segment, why: str) -> None:
        """A segment ClickHouse keeps refusing as data: kept aside (never deleted), counted, logged."""
        os.makedirs(self.rejected_dir, exist_ok=True)
        target = os.path.join(self.rejected_dir, os.path.basename(segment.path))
        os.replace(segment.path, target)
        with open(target + ".why", "w", encoding="utf-8") as f:
            f.write(why + "\n")
        self.wal.remove(segment)
        self.stats.add(segments_rejected=1)
        log.error("ClickHouse refused segment %d %d times as data; moved to %s: %s",
                  segment.seq, _POISON_ATTEMPTS, target, why)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        sealed = self.wal.sealed()
        with self.stats.lock:
            return {"pid": os.getpid(), "started_at": self.stats.started, "updated_at": time.time(),
                    "counts": dict(self.stats.counts), "repairs": dict(self.stats.repairs),
                    "backlog_bytes": self.wal.backlog_bytes(), "backlog_segments": len(sealed),
                    "oldest_pending_seq": sealed[0].seq if sealed else None,
                    "paused": self.paused, "wal_id": self.wal.id,
                    "last_insert_at": self.stats.last_insert_at, "last_error": self.stats.last_error,
                    "last_error_at": self.stats.last_error_at}

    def _status_writer(self) -> None:
        path = os.path.join(self.directory, STATUS_FILE)
        while not self._stop.wait(1.0):
            self.write_status(path)
        self.write_status(path)

    def write_status(self, path: str | None = None) -> None:
        path = path or os.path.join(self.directory, STATUS_FILE)
        tmp = f"{path}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.status(), f)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    # -- servers --------------------------------------------------------------------------------
    def start(self, host: str, http_port: int, grpc_port: int) -> "Ingest":
        self._http = _HTTPServer((host, http_port), _Handler)
        self._http.ingest = self
        self.http_port = self._http.server_address[1]
        self.grpc_port = self._start_grpc(host, grpc_port)
        for target, name in ((self._http.serve_forever, "otlp-http"), (self._inserter, "inserter"),
                             (self._status_writer, "status")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _start_grpc(self, host: str, port: int) -> int:
        import grpc

        def export(request: bytes, context) -> bytes:
            try:
                decoded = self.accept(request, "application/x-protobuf")
            except otlp.BadRequest as exc:
                self.stats.add(requests_refused=1)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except WalFull as exc:
                self.stats.add(requests_refused=1)
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
        self._grpc = server
        return chosen

    def stop(self) -> None:
        """Stops taking requests, inserts what the log holds (while ClickHouse answers), and returns."""
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self.wal.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ingest: Ingest


class _Handler(BaseHTTPRequestHandler):
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
        except WalFull as exc:
            ingest.stats.add(requests_refused=1)
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

