"""The insert loop: the write-ahead log's sealed segments into ClickHouse, in batches, exactly once.

Every batch interval the current segment is sealed and the sealed ones go in, in order, as
inserts of many segments (up to BATCH_BYTES of log), each chunk of at most INSERT_ROWS rows with
its own ``insert_deduplication_token``; a segment leaves the disk only once ClickHouse holds it.
The batch in flight is recorded on disk first, so that after a crash the same segments go again
with the same token. A batch ClickHouse refuses as data goes again one segment at a time, and a
segment it keeps refusing is set aside (``rejected/``). While ``inserts_paused`` holds (a rollup
check runs), the loop waits; a ClickHouse outage only delays it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from typing import Any

from swarmlens.ingest import otlp
from swarmlens.ingest.dedupe import DIGEST_BYTES, RETRY_WINDOW
from swarmlens.ingest.state import pause_holder as _pause_holder
from swarmlens.ingest.wal import Segment, SegmentData

log = logging.getLogger(__name__)

# ClickHouse codes after which a segment is retried: the schema is not there yet (migrations running).
_RETRY_FOREVER_CODES = {60, 81}
_POISON_ATTEMPTS = 5
INFLIGHT_FILE = "inflight.json"
INFLIGHT_BYTES = 4096
INSERT_ROWS = 20_000
# A backlog goes in as inserts of many segments, up to this much log each (about 340 bytes a span).
BATCH_BYTES = 24 << 20
BATCH_SEGMENTS = 2_000


class Inserter:
    """The insert loop and the sealer of one Ingest's log."""

    def __init__(self, ingest):
        self.ingest = ingest
        self.config = ingest.config
        self.wal, self.stats, self.recent, self.quarantine = ingest.wal, ingest.stats, ingest.recent, ingest.quarantine
        self._stop = ingest._stop
        self.rejected_dir = os.path.join(ingest.directory, "rejected")
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
            data = self.read(segment, crashed_tail=segment.seq == last_of_run[segment.run])
            if segment.framed and data.sealed is None and segment.seq != last_of_run[segment.run]:
                self.quarantine.cut_short(segment, data)
            for record in data.records:
                self.recent.seen(record[:DIGEST_BYTES])

    def read(self, segment: Segment, crashed_tail: bool = False) -> SegmentData:
        """A segment's whole records; its damaged bytes are copied to the quarantine (once) first.
        ``crashed_tail``: the last segment a dead run wrote, whose cut-short end was never acknowledged."""
        data = self.wal.read(segment)
        if data.damaged:
            self.quarantine.keep(segment, data, crashed_tail and data.sealed is None)
        if segment.framed and data.sealed is None and segment.run == self.wal.run \
                and segment.seq not in self.wal.closed_without_seal:
            self.quarantine.cut_short(segment, data)  # this run sealed it: its end was cut off since
        return data

    def run(self) -> None:
        """The insert loop: every batch interval, the sealed segments go in, in order, in batches."""
        from swarmlens.store.client import StoreError, StoreUnavailable, connect

        client = None
        pause = 0.5
        failures: Counter = Counter()
        singles_through = 0  # a batch ClickHouse refused as data goes again one segment at a time
        while True:
            stopping = self._stop.wait(self.ingest.batch_seconds)
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
                digests = [r[:DIGEST_BYTES] for s in present for r in self.read(s).records]
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

    def sealer(self) -> None:
        """Closes the current segment every batch interval, also while an insert waits on a stalled
        ClickHouse: a backlog is then many small segments, each findable, not one growing file."""
        while not self._stop.wait(self.ingest.batch_seconds):
            try:
                self.wal.seal()
            except Exception as exc:  # the disk: the next tick tries again
                log.warning("cannot seal the current segment: %s", exc)

    def _hold_back(self, stopping: bool) -> bool:
        """True while `inserts_paused` holds the inserts back (a rollup check runs)."""
        held = _pause_holder(self.ingest.directory) is not None and not stopping
        if held != self.ingest.paused:
            self.ingest.paused = held
            log.info("inserts %s", "held back for a rollup check" if held else "resumed")
            self.ingest.write_status()
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
                    for record in self.read(segment).records:
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
                    client.insert("otel_traces", rows, column_names=columns, database=self.ingest.database,
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
