"""The write-ahead log between receiving spans and inserting them.

A request is acknowledged only once its record is on disk (``append`` returns after ``fdatasync``),
so whatever is killed afterwards, the record is still there when the process comes back. Records go
to numbered segment files; every ``seal`` (the inserter calls it every batch interval) closes the
current segment, which then becomes one insert. A segment is deleted only after ClickHouse has
committed its insert, and every insert of a segment carries the same deduplication token (the log's
id, the id of the run that wrote the segment, and the segment's number), so an insert repeated after
a crash is dropped by ClickHouse instead of counted twice. The run id is new at every start and part
of the segment's file name, so no two segments ever share a token: after a clean stop the log is
empty and numbering starts again, but the tokens of the last run, which ClickHouse remembers for its
last 1,000 inserts per table (non_replicated_deduplication_window), can never match a new segment
and drop it as a repeat.

Record layout: 4 bytes little-endian payload length, 4 bytes CRC-32 of the payload, the payload.
A record cut short by a crash (never acknowledged, since its fsync never returned) ends the
segment when it is read back.

Appends from many threads share one fsync (group commit): a thread whose record an fsync already
covered returns without its own.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass
from typing import Iterator

_HEADER = struct.Struct("<II")
# NUMBER-RUN.wal; NUMBER.wal is a segment of a version whose tokens had no run id.
_NAME = re.compile(r"^(\d{20})(?:-([0-9a-f]{16}))?\.wal$")
MAX_RECORD = 1 << 30


class WalFull(Exception):
    """The log holds more than its limit: ClickHouse is behind; the sender should retry later."""


@dataclass(frozen=True)
class Segment:
    seq: int
    path: str
    size: int
    run: str = ""  # the id of the run that wrote it ("" for segments of a version without run ids)

    @property
    def name(self) -> str:
        return f"{self.seq:020d}-{self.run}" if self.run else f"{self.seq:020d}"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    def __init__(self, directory: str, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        os.makedirs(directory, exist_ok=True)
        self.id = self._log_id()
        self.run = uuid.uuid4().hex[:16]  # this run's segments: their tokens differ from every other run's
        self._lock = threading.Lock()        # the current segment's file and offsets
        self._sync_lock = threading.Lock()   # one fsync at a time
        self._sealed: list[Segment] = []
        existing = sorted(self._segments_on_disk())
        self._sealed = [Segment(seq, path, os.path.getsize(path), run) for seq, run, path in existing]
        self._seq = (existing[-1][0] + 1) if existing else 1
        self._fd: int | None = None
        self._written = 0      # bytes written to the current segment
        self._synced = 0       # bytes of it known to be on disk
        self._generation = 0   # bumps on each seal, so a waiter knows its segment was closed (and synced)
        self._records = 0
        self._open()

    # -- setup ----------------------------------------------------------------------------------
    def _log_id(self) -> str:
        path = os.path.join(self.directory, "log-id")
        try:
            with open(path, encoding="ascii") as f:
                value = f.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        value = uuid.uuid4().hex
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        return value

    def _segments_on_disk(self) -> Iterator[tuple[int, str, str]]:
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m:
                yield int(m.group(1)), m.group(2) or "", os.path.join(self.directory, name)

    def _path(self, seq: int) -> str:
        """The file of this run's segment ``seq``."""
        return os.path.join(self.directory, f"{seq:020d}-{self.run}.wal")

    def _open(self) -> None:
        self._fd = os.open(self._path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.directory)
        self._written = self._synced = self._records = 0

    # -- writing --------------------------------------------------------------------------------
    def backlog_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._sealed) + self._written

    def append(self, payload: bytes) -> None:
        """Writes one record and returns once it is on disk. Raises WalFull past the limit."""
        if len(payload) > MAX_RECORD:
            raise ValueError("record too large")
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        if self._written + len(record) > self.segment_bytes:
            self.seal()  # takes the fsync lock too: no thread is syncing the segment it closes
        with self._lock:
            if sum(s.size for s in self._sealed) + self._written + len(record) > self.max_bytes:
                raise WalFull(f"the write-ahead log holds more than {self.max_bytes} bytes")
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view):]
            self._written += len(record)
            self._records += 1
            target, generation, fd = self._written, self._generation, self._fd
        with self._sync_lock:
            with self._lock:
                if generation != self._generation or self._synced >= target:
                    return  # sealed (and so synced) or covered by another thread's fsync
                upto = self._written
            os.fdatasync(fd)
            with self._lock:
                if generation == self._generation:
                    self._synced = max(self._synced, upto)

    def seal(self) -> None:
        """Closes the current segment if it holds records; it is then ready to insert."""
        with self._sync_lock, self._lock:
            if self._records:
                self._seal_locked()

    def _seal_locked(self) -> None:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._sealed.append(Segment(self._seq, self._path(self._seq), self._written, self.run))
        self._generation += 1
        self._seq += 1
        self._open()

    # -- reading and removing -------------------------------------------------------------------
    def sealed(self) -> list[Segment]:
        with self._lock:
            return list(self._sealed)

    def token(self, segment: Segment) -> str:
        if segment.run:
            return f"swarmlens-wal-{self.id}-{segment.run}-{segment.seq}"
        return f"swarmlens-wal-{self.id}-{segment.seq}"  # as the version that wrote it inserted it

    @staticmethod
    def records(segment: Segment) -> list[bytes]:
        """The complete records of a segment; a torn or corrupt tail (a crash mid-write) ends it."""
        with open(segment.path, "rb") as f:
            data = f.read()
        out, pos = [], 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            body = data[pos + _HEADER.size:pos + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                break
            out.append(body)
            pos += _HEADER.size + length
        return out

    def remove(self, segment: Segment) -> None:
        """After ClickHouse committed the segment's insert."""
        with self._lock:
            self._sealed = [s for s in self._sealed if s.seq != segment.seq]
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            pass
        _fsync_dir(self.directory)

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._fd is not None:
                os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = None
                if not self._records:
                    try:
                        os.unlink(self._path(self._seq))
                    except FileNotFoundError:
                        pass
