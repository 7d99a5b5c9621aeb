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

import hashlib
import json
import logging
import os
import queue
import threading
import time
import zlib
from collections import Counter
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping

from swarmlens.ingest import otlp
from swarmlens.ingest.wal import Segment, SegmentData, WalFull, WalUnavailable, WriteAheadLog
from swarmlens.ingest.state import PAUSE_FILE, STATUS_FILE, inserts_paused, read_status  # noqa: F401
from swarmlens.ingest.state import pause_holder as _pause_holder
from swarmlens.ingest.wal import fsync_dir as wal_fsync_dir

log = logging.getLogger("swarmlens.ingest")

MAX_REQUEST_BYTES = 16 << 20            # after decompression, as rotel's and the contrib receiver's gRPC limit
TRACES_PATH = "/v1/traces"
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
# ClickHouse codes after which a segment is retried: the schema is not there yet (migrations running).
_RETRY_FOREVER_CODES = {60, 81}
_POISON_ATTEMPTS = 5


INFLIGHT_FILE = "inflight.json"
INFLIGHT_BYTES = 4096
QUARANTINE_DIR = "quarantine"
DIGEST_BYTES = 16
INSERT_ROWS = 20_000
# A backlog goes in as inserts of many segments, up to this much log each (about 340 bytes a span).
BATCH_BYTES = 24 << 20
BATCH_SEGMENTS = 2_000
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


class Quarantine:
    """Damaged bytes of the log, kept aside: ``NAME.bin`` (the bytes) and ``NAME.why`` (JSON: the
    segment, the offset, the reason, the records in it). Nothing here is ever deleted by swarmlens."""

    def __init__(self, directory: str):
        self.directory = directory
        self._lock = threading.Lock()
        self._totals = {"records": 0, "bytes": 0, "torn_records": 0, "segments_cut_short": 0}
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            names = []
        for name in names:
            if name.endswith(".why"):
                try:
                    with open(os.path.join(directory, name), encoding="utf-8") as f:
                        self._count(json.load(f))
                except (OSError, ValueError):
                    continue

    def _count(self, why: dict) -> None:
        if why.get("kind") == "cut_short":
            self._totals["segments_cut_short"] += 1
        elif why.get("kind") == "torn":
            self._totals["torn_records"] += int(why.get("records") or 0)
        else:
            self._totals["records"] += int(why.get("records") or 0)
            self._totals["bytes"] += int(why.get("length") or 0)

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return {**self._totals, "directory": self.directory}

    def _write(self, name: str, why: dict, data: bytes) -> bool:
        why_path = os.path.join(self.directory, name + ".why")
        if os.path.exists(why_path):
            return False  # kept already, at an earlier start
        os.makedirs(self.directory, exist_ok=True)
        for path, content in ((os.path.join(self.directory, name + ".bin"), data),
                              (why_path, (json.dumps(why, indent=1) + "\n").encode())):
            with open(path + ".tmp", "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(path + ".tmp", path)
        wal_fsync_dir(self.directory)
        with self._lock:
            self._count(why)
        return True

    def keep(self, segment: Segment, data: SegmentData, crashed_tail: bool) -> None:
        with open(segment.path, "rb") as f:
            raw = f.read()
        for n, d in enumerate(data.damaged):
            torn = crashed_tail and d.end == data.size and n == len(data.damaged) - 1
            why = {"kind": "torn" if torn else "damaged", "segment": os.path.basename(segment.path),
                   "offset": d.start, "length": d.end - d.start, "records": d.records,
                   "reason": d.reason + (" (the end of the segment a stopped run was writing: never acknowledged)"
                                         if torn else ""),
                   "at": time.time()}
            if self._write(f"{segment.name}-{d.start:012d}", why, raw[d.start:d.end]):
                (log.warning if torn else log.error)(
                    "write-ahead log: %d damaged byte(s) of segment %s at offset %d (%s; %d record(s)) moved to %s",
                    d.end - d.start, segment.name, d.start, why["reason"], d.records, self.directory)

    def cut_short(self, segment: Segment, data: SegmentData) -> None:
        why = {"kind": "cut_short", "segment": os.path.basename(segment.path), "offset": data.size, "length": 0,
               "records": 0, "at": time.time(),
               "reason": f"the segment ends at byte {data.size} without its seal record: its end was cut off "
                         f"(records after its {len(data.records)} whole one(s) are lost)"}
        if self._write(f"{segment.name}-cut-short", why, b""):
            log.error("write-ahead log: segment %s %s", segment.name, why["reason"])


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
                 max_backlog_bytes: int = 1 << 30, min_free_bytes: int | None = None):
        self.config = config
        self.directory = directory
        self.batch_seconds = batch_seconds
        if min_free_bytes is None:
            min_free_bytes = int(config.get("SWARMLENS_INGEST_MIN_FREE_BYTES") or 0)
        self.wal = WriteAheadLog(os.path.join(directory, "wal"), max_bytes=max_backlog_bytes,
                                 min_free_bytes=min_free_bytes)
        self.rejected_dir = os.path.join(directory, "rejected")
        self.quarantine = Quarantine(os.path.join(directory, QUARANTINE_DIR))
        self.stats = Stats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None
        self._grpc = None
        self.database = config["SWARMLENS_OTEL_DATABASE"]
        self.paused = False
        self.recent = RecentRequests(os.path.join(directory, "inserted"))
        self._inflight_path = os.path.join(self.wal.directory, INFLIGHT_FILE)
        pending = self.wal.sealed()
        # Without a record of the batch in flight, the first segment may have been in flight alone (a
        # version that inserted one segment at a time): it goes in alone, with its own token.
        self._first_alone = bool(pending) and self._read_inflight() is None
        if not os.path.exists(self._inflight_path):
            try:
                self._put_inflight(b"", sync=True)  # its block, taken now rather than on a full disk
            except OSError as exc:
                log.warning("cannot create %s: %s", self._inflight_path, exc)
        last_of_run: dict[str, int] = {}
        for segment in pending:
            last_of_run[segment.run] = segment.seq
        for segment in pending:
            data = self._read(segment, crashed_tail=segment.seq == last_of_run[segment.run])
            if segment.framed and data.sealed is None and segment.seq != last_of_run[segment.run]:
                self.quarantine.cut_short(segment, data)
            for record in data.records:
                self.recent.seen(record[:DIGEST_BYTES])

    def _read(self, segment: Segment, crashed_tail: bool = False) -> SegmentData:
        """A segment's whole records; its damaged bytes are copied to the quarantine (once) first.
        ``crashed_tail``: the last segment a dead run wrote, whose cut-short end was never acknowledged."""
        data = self.wal.read(segment)
        if data.damaged:
            self.quarantine.keep(segment, data, crashed_tail and data.sealed is None)
        if segment.framed and data.sealed is None and segment.run == self.wal.run \
                and segment.seq not in self.wal.closed_without_seal:
            self.quarantine.cut_short(segment, data)  # this run sealed it: its end was cut off since
        return data

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
        singles_through = 0  # a batch ClickHouse refused as data goes again one segment at a time
        while True:
            stopping = self._stop.wait(self.batch_seconds)
            self.wal.seal()
            self.recent.prune()
            if self._hold_back(stopping):
                continue
            pending = self.wal.sealed()
            while pending:
                if self._hold_back(stopping):
                    break
                try:
                    picked = self._next_batch(pending, singles_through)
                except OSError as exc:
                    self.stats.error(f"cannot prepare an insert: {exc}")
                    log.warning("cannot prepare an insert (will retry in %.1f s): %s", pause, exc)
                    if self._stop.wait(pause):
                        return
                    pause = min(pause * 2, 10.0)
                    continue
                if picked is None:  # the batch in flight at a crash had committed: its segments are gone
                    pending = self.wal.sealed()
                    continue
                batch, token = picked
                first = batch[0]
                try:
                    if client is None:
                        client = connect(self.config)
                    self._insert_batch(client, batch, token)
                    pause = 0.5
                    failures.pop(first.seq, None)
                    pending = pending[len(batch):]
                    continue
                except StoreError as exc:
                    code = getattr(exc, "code", None)
                    self.stats.error(f"insert of segment(s) {first.seq}-{batch[-1].seq} failed: {exc}")
                    self.stats.add(insert_failures=1)
                    log.warning("insert of segment(s) %d-%d failed (will retry in %.1f s): %s", first.seq,
                                batch[-1].seq, pause, exc)
                    if isinstance(exc, StoreUnavailable) or code is None:
                        if client is not None:
                            try:
                                client.close()
                            except Exception:
                                pass
                            client = None
                    elif code not in _RETRY_FOREVER_CODES:
                        # Refused as data: nothing of it was committed, so it may go again otherwise.
                        self._clear_inflight()
                        if len(batch) > 1:
                            singles_through = batch[-1].seq
                            continue
                        failures[first.seq] += 1
                        if failures[first.seq] >= _POISON_ATTEMPTS:
                            self._reject(first, str(exc))
                            pending = pending[1:]
                            continue
                except Exception as exc:  # a connection dropped mid-insert, and the like
                    self.stats.error(f"insert of segment(s) {first.seq}-{batch[-1].seq} failed: {exc!r}")
                    self.stats.add(insert_failures=1)
                    log.warning("insert of segment(s) %d-%d failed (will retry in %.1f s): %r", first.seq,
                                batch[-1].seq, pause, exc)
                    client = None
                if self._stop.wait(pause):
                    return  # stopping: what is left stays in the log for the next start
                pause = min(pause * 2, 10.0)
            if stopping:
                return

    # The batch in flight: its segments and token are on disk before its insert is sent, so that after
    # a crash the same segments go again with the same token (ClickHouse drops the repeat), never
    # another grouping of them whose token it does not know. The file keeps its size and is written
    # in place, so recording a batch needs no free block even on a full disk (the batch is what
    # frees the disk). A torn write of it was never followed by its insert, so it reads as no batch.
    def _read_inflight(self) -> dict | None:
        try:
            with open(self._inflight_path, "rb") as f:
                doc = json.loads(f.read().strip() or b"null")
            if isinstance(doc, dict) and doc.get("token") and doc.get("first") and doc.get("last"):
                return doc
        except (OSError, ValueError):
            pass
        return None

    def _put_inflight(self, content: bytes, sync: bool) -> None:
        fd = os.open(self._inflight_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, content.ljust(INFLIGHT_BYTES, b" "), 0)
            if sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)

    def _write_inflight(self, batch: list[Segment], token: str) -> None:
        doc = json.dumps({"token": token, "first": batch[0].name, "last": batch[-1].name,
                          "count": len(batch)}).encode()
        self._put_inflight(doc, sync=True)

    def _clear_inflight(self) -> None:
        # No sync: a clear lost in a crash names segments that are gone, which reads as nothing in flight.
        if os.path.exists(self._inflight_path):
            self._put_inflight(b"", sync=False)

    def batch_token(self, batch: list[Segment]) -> str:
        if len(batch) == 1:
            return self.wal.token(batch[0])  # as a segment inserted alone always was
        last = batch[-1]
        return f"{self.wal.token(batch[0])}-to-{last.run}-{last.seq}"

    def _next_batch(self, pending: list[Segment], singles_through: int = 0) -> tuple[list[Segment], str] | None:
        inflight = self._read_inflight()
        if inflight is not None:
            first, last = int(inflight["first"][:20]), int(inflight["last"][:20])
            present = [s for s in pending if first <= s.seq <= last]
            if present and len(present) == inflight.get("count") and present[0].name == inflight["first"] \
                    and present[-1].name == inflight["last"]:
                return present, inflight["token"]
            if present:  # some were deleted, so the insert had committed: finish what the crash cut off
                digests = [r[:DIGEST_BYTES] for s in present for r in self._read(s).records]
                self._remember(present[0], digests)
                self.wal.remove_many(present)
            self._clear_inflight()
            return None
        if self._first_alone or pending[0].seq <= singles_through:
            self._first_alone = False
            batch = pending[:1]
        else:
            batch, size = [], 0
            for segment in pending:
                if batch and (size + segment.size > BATCH_BYTES or len(batch) >= BATCH_SEGMENTS
                              or segment.seq <= singles_through):
                    break
                batch.append(segment)
                size += segment.size
        token = self.batch_token(batch)
        self._write_inflight(batch, token)
        return batch, token

    def _sealer(self) -> None:
        """Closes the current segment every batch interval, also while an insert waits on a stalled
        ClickHouse: a backlog is then many small segments, each findable, not one growing file."""
        while not self._stop.wait(self.batch_seconds):
            try:
                self.wal.seal()
            except Exception as exc:  # the disk: the next tick tries again
                log.warning("cannot seal the current segment: %s", exc)

    def _hold_back(self, stopping: bool) -> bool:
        """True while `inserts_paused` holds the inserts back (a rollup check runs)."""
        held = _pause_holder(self.directory) is not None and not stopping
        if held != self.paused:
            self.paused = held
            log.info("inserts %s", "held back for a rollup check" if held else "resumed")
            self.write_status()
        return held

    def _insert_segment(self, client, segment: Segment) -> None:
        self._insert_batch(client, [segment], self.batch_token([segment]))

    def _insert_batch(self, client, batch: list[Segment], token: str) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        from swarmlens.store.client import raise_as_store_error

        digests: list[bytes] = []
        inserted = chunk = 0
        columns = list(otlp.COLUMNS)
        chunks: queue.Queue = queue.Queue(maxsize=1)
        cancelled = threading.Event()

        def decode() -> None:
            # Runs beside the inserts: the next chunk's rows are built while ClickHouse takes the last.
            # A large batch goes in as several inserts of at most INSERT_ROWS rows, which bounds this
            # process's memory. The chunks fall at the same record boundaries on every attempt, so each
            # keeps its own token across a crash.
            def send(item) -> bool:
                while not cancelled.is_set():
                    try:
                        chunks.put(item, timeout=0.2)
                        return True
                    except queue.Full:
                        continue
                return False

            try:
                rows: list[list[Any]] = []
                for segment in batch:
                    for record in self._read(segment).records:
                        digests.append(record[:DIGEST_BYTES])
                        rows.extend(otlp.to_rows(ExportTraceServiceRequest.FromString(record[DIGEST_BYTES:])))
                        if len(rows) >= INSERT_ROWS:
                            if not send(rows):
                                return
                            rows = []
                if send(rows):
                    send(None)
            except BaseException as exc:  # handed to the inserting thread
                send(exc)

        producer = threading.Thread(target=decode, name="decode", daemon=True)
        producer.start()
        try:
            while True:
                rows = chunks.get()
                if isinstance(rows, BaseException):
                    raise rows
                if rows is None:
                    break
                if not rows:
                    continue
                try:
                    client.insert("otel_traces", rows, column_names=columns, database=self.database,
                                  settings={"insert_deduplicate": 1,
                                            "insert_deduplication_token": token + (f"-{chunk}" if chunk else ""),
                                            "deduplicate_blocks_in_dependent_materialized_views": 1,
                                            "async_insert": 0})
                except Exception as exc:
                    raise_as_store_error(exc)
                inserted += len(rows)
                chunk += 1
        finally:
            cancelled.set()
            producer.join()
        self._remember(batch[0], digests)
        self.wal.remove_many(batch)
        self._clear_inflight()
        with self.stats.lock:
            self.stats.counts.update(spans_inserted=inserted, segments_inserted=len(batch), inserts=max(chunk, 1))
            self.stats.last_insert_at = time.time()

    def _remember(self, segment: Segment, digests: list[bytes]) -> None:
        try:
            self.recent.remember_inserted(segment, digests)
        except OSError as exc:  # a full disk: only a sender's retry of these requests goes unrecognised
            log.warning("cannot keep the digests of inserted requests (%s); a sender's retry of them within "
                        "%d s would be stored again", exc, RETRY_WINDOW)

    def _reject(self, segment: Segment, why: str) -> None:
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
        try:
            free = self.wal.free_bytes()
        except OSError:
            free = None
        with self.stats.lock:
            return {"pid": os.getpid(), "started_at": self.stats.started, "updated_at": time.time(),
                    "counts": dict(self.stats.counts), "repairs": dict(self.stats.repairs),
                    "backlog_bytes": self.wal.backlog_bytes(), "backlog_segments": len(sealed),
                    "oldest_pending_seq": sealed[0].seq if sealed else None,
                    "paused": self.paused, "wal_id": self.wal.id,
                    "wal_write_failures": self.wal.write_failures,
                    "wal_refused_low_space": self.wal.refused_low_space,
                    "free_bytes": free, "min_free_bytes": self.wal.min_free_bytes,
                    "quarantine": self.quarantine.totals(),
                    "last_insert_at": self.stats.last_insert_at, "last_error": self.stats.last_error,
                    "last_error_at": self.stats.last_error_at}

    def metrics(self) -> str:
        """The counters in the Prometheus text format, for GET /metrics."""
        st = self.status()
        counts, q = st["counts"], st["quarantine"]
        series = [
            ("swarmlens_ingest_requests_total", "counter", "OTLP export requests acknowledged", counts.get("requests", 0)),
            ("swarmlens_ingest_requests_refused_total", "counter", "OTLP export requests refused (4xx, 503)",
             counts.get("requests_refused", 0)),
            ("swarmlens_ingest_spans_accepted_total", "counter", "spans acknowledged (on disk in the log)",
             counts.get("spans_accepted", 0)),
            ("swarmlens_ingest_spans_inserted_total", "counter", "spans inserted into ClickHouse",
             counts.get("spans_inserted", 0)),
            ("swarmlens_ingest_insert_failures_total", "counter", "failed insert attempts", counts.get("insert_failures", 0)),
            ("swarmlens_ingest_wal_write_failures_total", "counter",
             "writes or syncs of the log the disk refused (the request got 503)", st["wal_write_failures"]),
            ("swarmlens_ingest_wal_refused_low_space_total", "counter",
             "requests refused because the log's disk was below SWARMLENS_INGEST_MIN_FREE_BYTES",
             st["wal_refused_low_space"]),
            ("swarmlens_ingest_wal_backlog_bytes", "gauge", "bytes of log not yet in ClickHouse", st["backlog_bytes"]),
            ("swarmlens_ingest_wal_backlog_segments", "gauge", "segments not yet in ClickHouse", st["backlog_segments"]),
            ("swarmlens_ingest_wal_quarantined_records", "gauge",
             "damaged records of the log moved to the quarantine folder", q["records"]),
            ("swarmlens_ingest_wal_quarantined_bytes", "gauge", "damaged bytes of the log in the quarantine folder",
             q["bytes"]),
            ("swarmlens_ingest_wal_torn_records", "gauge",
             "records a crash cut short at the end of the log (never acknowledged), in the quarantine folder",
             q["torn_records"]),
            ("swarmlens_ingest_wal_segments_cut_short", "gauge", "segments found without their end (seal record)",
             q["segments_cut_short"]),
        ]
        lines = []
        for name, kind, help_text, value in series:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {int(value or 0)}"]
        return "\n".join(lines) + "\n"

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
                             (self._sealer, "sealer"), (self._status_writer, "status")):
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
            except (WalFull, WalUnavailable) as exc:
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

