"""The receiver's counters: kept while it runs, written to status.json, served as Prometheus metrics.

``Stats`` counts requests, spans, inserts and failures since the process started; ``Ingest.status``
(server.py) adds the log's state to them for ``DATA_DIR/ingest/status.json`` and `swarmlens
status`; ``prometheus`` renders that status for ``GET /metrics``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


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


def prometheus(st: dict[str, Any]) -> str:
    """The counters of a status (Ingest.status) in the Prometheus text format, for GET /metrics."""
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
