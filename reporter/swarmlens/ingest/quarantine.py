"""The quarantine: damaged bytes of the write-ahead log, kept aside and counted, never deleted.

A record whose checksum fails, the torn end of a segment a crash cut short, a segment found
without its seal record: each is copied once to ``DATA_DIR/ingest/quarantine`` (``NAME.bin`` and
``NAME.why``), logged, and counted for `swarmlens status` and /metrics.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from swarmlens.ingest.wal import Segment, SegmentData
from swarmlens.ingest.wal import fsync_dir as wal_fsync_dir

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"


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
