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

This module owns the receiver as a whole (its log, its threads, what a request's bytes become);
one concern per module does the rest:

    receivers.py    OTLP/HTTP and OTLP/gRPC, handing request bodies to ``Ingest.accept``
    dedupe.py       the digests of recent requests, by which a sender's retry is recognised
    inserter.py     the insert loop: sealed segments into ClickHouse in batches, the batch in flight
    quarantine.py   damaged bytes of the log, kept aside and counted
    metrics.py      the counters, and their Prometheus text for /metrics
    collectors.py   rotel, the collector ``swarmlens up`` runs instead with SWARMLENS_COLLECTOR=rotel
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Any, Mapping

from swarmlens.ingest import otlp, receivers
from swarmlens.ingest.dedupe import DIGEST_BYTES, RecentRequests
from swarmlens.ingest.inserter import Inserter
from swarmlens.ingest.metrics import Stats, prometheus
from swarmlens.ingest.quarantine import QUARANTINE_DIR, Quarantine
from swarmlens.ingest.state import STATUS_FILE
from swarmlens.ingest.wal import WriteAheadLog

log = logging.getLogger(__name__)


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
        self.quarantine = Quarantine(os.path.join(directory, QUARANTINE_DIR))
        self.stats = Stats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: receivers.HTTPServer | None = None
        self._grpc = None
        self.database = config["SWARMLENS_OTEL_DATABASE"]
        self.paused = False
        self.recent = RecentRequests(os.path.join(directory, "inserted"))
        # the batch in flight at a crash, then the log's pending segments, read once (damage quarantined)
        self.inserter = Inserter(self)

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
        return prometheus(self.status())

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
        self._http = receivers.HTTPServer((host, http_port), receivers.Handler)
        self._http.ingest = self
        self.http_port = self._http.server_address[1]
        self._grpc, self.grpc_port = receivers.start_grpc(self, host, grpc_port)
        for target, name in ((self._http.serve_forever, "otlp-http"), (self.inserter.run, "inserter"),
                             (self.inserter.sealer, "sealer"), (self._status_writer, "status")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

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
