"""The write-ahead log between receiving spans and inserting them.

A request is acknowledged only once its record is on disk (``append`` returns after ``fdatasync``),
so whatever is killed afterwards, the record is still there when the process comes back. Records go
to numbered segment files; every ``seal`` (the inserter calls it every batch interval) closes the
current segment, which then becomes part of an insert. A segment is deleted only after ClickHouse
has committed its insert, and every insert carries a deduplication token derived from the log's id,
the id of the run that wrote the segments and their numbers, so an insert repeated after a crash is
dropped by ClickHouse instead of counted twice. The run id is new at every start and part of the
segment's file name, so no two segments ever share a token: after a clean stop the log is empty
and numbering starts again, but the tokens of the last run, which ClickHouse remembers for its last
1,000 inserts per table (non_replicated_deduplication_window), can never match a new segment.

Record layout (segments named ``NUMBER-RUN.v2.wal``), 20 bytes of header then the payload::

    magic "\\xf0SWL" | kind (1 byte) | 3 zero bytes | payload length (u32 LE) | CRC-32 of the payload
    | CRC-32 of the 16 bytes before it

``kind`` is 1 for a request and 2 for the seal record that ``seal`` writes last (its payload: the
number of records before it and their bytes, two u64). The magic and the header's own checksum make
every record findable on its own: a reader that meets damaged bytes looks for the next magic whose
header checks, so one damaged record (a flipped byte, garbage written into the file) costs only
itself. A header that checks with a payload that does not is a record of known extent, skipped
exactly. The damaged byte ranges are reported with a reason, for the receiver to quarantine.

Segments of the version before (``NUMBER[-RUN].wal``: 4 bytes length, 4 bytes CRC-32, payload) are
still read, as they were: up to their first bad record.

A write that fails (ENOSPC, EIO, a short write) is cut back: the segment is truncated to the end of
its last whole record and synced, the caller gets ``WalUnavailable`` (the receiver answers 503 with
Retry-After), and the next append writes where the failed one began. A failed ``fdatasync`` cuts the
segment back to what an earlier sync covered, and every record past that point, whichever thread
wrote it, is refused. Below ``min_free_bytes`` of free space on the log's filesystem an append is
refused before anything is written.

Appends from many threads share one fsync (group commit): a thread whose record an fsync already
covered returns without its own.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from swarmlens.errors import SwarmlensError

log = logging.getLogger(__name__)

MAGIC = b"\xf0SWL"
KIND_RECORD = 1
KIND_SEAL = 2
_HEAD = struct.Struct("<4sB3xII")     # magic, kind, payload length, payload CRC-32
_HEAD_CRC = struct.Struct("<I")
HEADER_BYTES = _HEAD.size + _HEAD_CRC.size
_SEAL = struct.Struct("<QQ")
_LEGACY_HEADER = struct.Struct("<II")
# NUMBER-RUN.v2.wal: this layout; NUMBER-RUN.wal and NUMBER.wal: the layout without magic (read only).
_NAME = re.compile(r"^(\d{20})(?:-([0-9a-f]{16}))?(\.v2)?\.wal$")
MAX_RECORD = 1 << 30


class WalFull(SwarmlensError):
    """The log holds more than its limit: ClickHouse is behind; the sender should retry later."""


class WalUnavailable(SwarmlensError):
    """Nothing was logged: the disk refused the write or is nearly full. The sender retries later."""


@dataclass(frozen=True)
class Segment:
    seq: int
    path: str
    size: int
    run: str = ""  # the id of the run that wrote it ("" for segments of a version without run ids)
    framed: bool = True  # False: the layout without magic or seal records

    @property
    def name(self) -> str:
        return f"{self.seq:020d}-{self.run}" if self.run else f"{self.seq:020d}"


@dataclass
class Damage:
    start: int
    end: int
    reason: str
    records: int  # records known to be in the range (0 for bytes that never were one, e.g. garbage)


@dataclass
class SegmentData:
    records: list[bytes] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    sealed: tuple[int, int] | None = None  # (records, bytes) of the seal record, when there is one
    size: int = 0

    @property
    def missing(self) -> int:
        """Records the seal record counts that were not found whole (0 without a seal record)."""
        return max(0, self.sealed[0] - len(self.records)) if self.sealed else 0


def frame(kind: int, payload: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, kind, len(payload), zlib.crc32(payload))
    return head + _HEAD_CRC.pack(zlib.crc32(head)) + payload


def scan(data: bytes) -> SegmentData:
    """Every whole record of a framed segment, and the damaged ranges between them."""
    out = SegmentData(size=len(data))
    pos, n = 0, len(data)
    bad: int | None = None  # start of a range of bytes that are not a record

    def close_bad(at: int) -> None:
        nonlocal bad
        if bad is not None and at > bad:
            out.damaged.append(Damage(bad, at, "bytes that are not a record (a damaged header or garbage)", 1))
        bad = None

    while pos < n:
        if data.startswith(MAGIC, pos) and pos + HEADER_BYTES <= n:
            head = data[pos:pos + _HEAD.size]
            (hcrc,) = _HEAD_CRC.unpack_from(data, pos + _HEAD.size)
            if zlib.crc32(head) == hcrc:
                _, kind, length, pcrc = _HEAD.unpack(head)
                end = pos + HEADER_BYTES + length
                if length > MAX_RECORD or end > n:
                    close_bad(pos)
                    out.damaged.append(Damage(pos, n, f"a record of {length} bytes cut short after "
                                                      f"{n - pos - HEADER_BYTES} (the end of the file)", 1))
                    pos = n
                    break
                body = data[pos + HEADER_BYTES:end]
                close_bad(pos)
                if zlib.crc32(body) != pcrc:
                    out.damaged.append(Damage(pos, end, "payload checksum mismatch", 1))
                elif kind == KIND_SEAL and length == _SEAL.size:
                    out.sealed = _SEAL.unpack(body)
                elif kind == KIND_RECORD:
                    out.records.append(body)
                else:
                    out.damaged.append(Damage(pos, end, f"record of unknown kind {kind}", 1))
                pos = end
                continue
        if bad is None:
            bad = pos
        nxt = data.find(MAGIC, pos + 1)
        pos = nxt if nxt >= 0 else n
    close_bad(n)
    if out.sealed and out.damaged:
        # With a seal record the count is exact: what it counts and was not found whole.
        counted = sum(d.records for d in out.damaged)
        if counted != out.missing and out.missing:
            out.damaged[-1].records += out.missing - counted
    return out


def scan_legacy(data: bytes) -> SegmentData:
    """A segment of the layout without magic: records up to the first that does not check."""
    out = SegmentData(size=len(data))
    pos = 0
    while pos + _LEGACY_HEADER.size <= len(data):
        length, crc = _LEGACY_HEADER.unpack_from(data, pos)
        body = data[pos + _LEGACY_HEADER.size:pos + _LEGACY_HEADER.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            break
        out.records.append(body)
        pos += _LEGACY_HEADER.size + length
    if pos < len(data):
        out.damaged.append(Damage(pos, len(data), "the rest of a segment of the earlier layout, after a record "
                                                  "that does not check", 1))
    return out


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # a regular file only writes nothing when the disk has no room
            raise OSError(errno.ENOSPC, "short write")
        view = view[n:]


class WriteAheadLog:
    def __init__(self, directory: str, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20,
                 min_free_bytes: int = 0):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.min_free_bytes = min_free_bytes
        os.makedirs(directory, exist_ok=True)
        self.id = self._log_id()
        self.run = uuid.uuid4().hex[:16]  # this run's segments: their tokens differ from every other run's
        self._lock = threading.Lock()        # the current segment's file and offsets
        self._sync_lock = threading.Lock()   # one fsync at a time; taken before _lock
        existing = sorted(self._segments_on_disk())
        self._sealed = [Segment(seq, path, os.path.getsize(path), run, framed)
                        for seq, run, framed, path in existing]
        self._seq = (existing[-1][0] + 1) if existing else 1
        self._fd: int | None = None
        self._written = 0      # bytes of whole records in the current segment
        self._synced = 0       # bytes of it known to be on disk
        self._ends: list[int] = []  # where each record of the current segment ends
        self._generation = 0   # bumps on each seal, so a waiter knows its segment was closed (and synced)
        self._epoch = 0        # bumps on each cut-back
        self._cuts: list[tuple[int, int, int]] = []  # (generation, epoch, offset) of recent cut-backs
        self._broken = False   # a cut-back itself failed: the segment is closed as it is at the next append
        self.write_failures = 0
        self.refused_low_space = 0
        self.closed_without_seal: set[int] = set()  # this run's segments whose seal record could not be written
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
        fsync_dir(self.directory)
        return value

    def _segments_on_disk(self) -> Iterator[tuple[int, str, bool, str]]:
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m:
                yield int(m.group(1)), m.group(2) or "", bool(m.group(3)), os.path.join(self.directory, name)

    def _path(self, seq: int) -> str:
        """The file of this run's segment ``seq``."""
        return os.path.join(self.directory, f"{seq:020d}-{self.run}.v2.wal")

    def _open(self) -> None:
        self._fd = os.open(self._path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._written = self._synced = 0
        self._ends = []
        fsync_dir(self.directory)

    # -- writing --------------------------------------------------------------------------------
    def backlog_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._sealed) + self._written

    def free_bytes(self) -> int:
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

    def append(self, payload: bytes) -> None:
        """Writes one record and returns once it is on disk. Raises WalFull past the backlog limit,
        WalUnavailable when the disk cannot take it now (nothing of the record is left behind)."""
        if len(payload) > MAX_RECORD:
            raise ValueError("record too large")
        record = frame(KIND_RECORD, payload)
        if self._broken or self._fd is None or self._written + len(record) > self.segment_bytes:
            self._roll()
        with self._lock:
            if sum(s.size for s in self._sealed) + self._written + len(record) > self.max_bytes:
                raise WalFull(f"the write-ahead log holds more than {self.max_bytes} bytes")
            if self._fd is None or self._broken:
                raise WalUnavailable("the write-ahead log has no open segment (the disk refused to create one)")
            if self.min_free_bytes:
                free = self.free_bytes()
                if free - len(record) < self.min_free_bytes:
                    self.refused_low_space += 1
                    raise WalUnavailable(f"only {free} bytes free on the write-ahead log's disk "
                                         f"(SWARMLENS_INGEST_MIN_FREE_BYTES is {self.min_free_bytes})")
            start = self._written
            try:
                _write_all(self._fd, record)
            except OSError as exc:
                self._cut_back_locked(start, exc)
                raise WalUnavailable(f"cannot write the write-ahead log: {exc}") from exc
            self._written = start + len(record)
            self._ends.append(self._written)
            target, generation, epoch = self._written, self._generation, self._epoch
        with self._sync_lock:
            with self._lock:
                if self._lost(generation, epoch, target):
                    raise WalUnavailable("the write-ahead log could not sync this record")
                if generation != self._generation or self._synced >= target:
                    return  # sealed (and so synced) or covered by another thread's fsync
                upto, fd = self._written, self._fd
            try:
                os.fdatasync(fd)
            except OSError as exc:
                with self._lock:
                    if generation == self._generation:
                        self._cut_back_locked(self._synced, exc)
                raise WalUnavailable(f"cannot sync the write-ahead log: {exc}") from exc
            with self._lock:
                if generation == self._generation:
                    self._synced = max(self._synced, upto)

    def _lost(self, generation: int, epoch: int, target: int) -> bool:
        """Whether a cut-back after this record was written removed it."""
        return any(g == generation and e > epoch and off < target for g, e, off in self._cuts)

    def _cut_back_locked(self, offset: int, exc: BaseException) -> None:
        """Truncates the current segment to ``offset`` (the end of a whole record) and syncs it."""
        self.write_failures += 1
        self._epoch += 1
        self._cuts = self._cuts[-255:] + [(self._generation, self._epoch, offset)]
        try:
            os.ftruncate(self._fd, offset)
            os.fdatasync(self._fd)
        except OSError as again:
            self._broken = True
            log.error("write-ahead log: a write failed (%s) and cutting segment %d back to %d bytes failed too (%s); "
                      "it is closed as it is, and its damaged tail is quarantined when it is read", exc, self._seq,
                      offset, again)
        else:
            log.error("write-ahead log: a write failed (%s); segment %d cut back to its last whole record "
                      "(%d bytes), the request refused", exc, self._seq, offset)
        self._written = min(self._written, offset)
        self._synced = min(self._synced, offset)
        while self._ends and self._ends[-1] > offset:
            self._ends.pop()

    def _roll(self) -> None:
        """Seals a full segment, closes a broken one, opens one where there is none."""
        with self._sync_lock, self._lock:
            if self._broken or (self._ends and self._fd is not None):
                self._close_current_locked(seal_record=not self._broken)
            if self._fd is None:
                try:
                    self._open()
                except OSError as exc:
                    self._fd = None
                    raise WalUnavailable(f"cannot open a write-ahead log segment: {exc}") from exc

    def seal(self) -> None:
        """Closes the current segment if it holds records; it is then ready to insert."""
        with self._sync_lock, self._lock:
            if self._broken:
                self._close_current_locked(seal_record=False)
            elif self._ends and self._fd is not None:
                self._close_current_locked(seal_record=True)
            if self._fd is None:
                try:
                    self._open()
                except OSError as exc:
                    log.error("write-ahead log: cannot open a new segment: %s", exc)

    def _close_current_locked(self, seal_record: bool) -> None:
        fd = self._fd
        if seal_record and not self._broken:
            start = self._written
            try:
                _write_all(fd, frame(KIND_SEAL, _SEAL.pack(len(self._ends), start)))
                os.fdatasync(fd)
                self._written = self._synced = start + HEADER_BYTES + _SEAL.size
            except OSError as exc:
                # The seal record is a help for readers, not a promise: the records before it are.
                try:
                    os.ftruncate(fd, start)
                    os.fdatasync(fd)
                    self._written = self._synced = start
                except OSError as again:
                    self._cut_back_locked(self._synced, again)
                self.closed_without_seal.add(self._seq)
                log.warning("write-ahead log: segment %d closed without its seal record: %s", self._seq, exc)
        elif self._broken:
            self.closed_without_seal.add(self._seq)
            # The cut-back failed: whatever it left past the last whole record is quarantined by the
            # reader. The whole records before it are kept if they can still be synced.
            try:
                os.fdatasync(fd)
            except OSError:
                self._epoch += 1
                self._cuts = self._cuts[-255:] + [(self._generation, self._epoch, self._synced)]
        try:
            size = os.fstat(fd).st_size
        except OSError:
            size = self._written
        try:
            os.close(fd)
        except OSError:
            pass
        self._sealed.append(Segment(self._seq, self._path(self._seq), size, self.run, True))
        self._generation += 1
        self._seq += 1
        self._fd = None
        self._broken = False
        self._written = self._synced = 0
        self._ends = []
        try:
            self._open()
        except OSError as exc:
            self._fd = None
            log.error("write-ahead log: cannot open segment %d: %s", self._seq, exc)

    # -- reading and removing -------------------------------------------------------------------
    def sealed(self) -> list[Segment]:
        with self._lock:
            return list(self._sealed)

    def token(self, segment: Segment) -> str:
        if segment.run:
            return f"swarmlens-wal-{self.id}-{segment.run}-{segment.seq}"
        return f"swarmlens-wal-{self.id}-{segment.seq}"  # as the version that wrote it inserted it

    @staticmethod
    def read(segment: Segment) -> SegmentData:
        with open(segment.path, "rb") as f:
            data = f.read()
        return scan(data) if segment.framed else scan_legacy(data)

    @classmethod
    def records(cls, segment: Segment) -> list[bytes]:
        """The whole records of a segment (damaged ones left out)."""
        return cls.read(segment).records

    def remove(self, segment: Segment) -> None:
        """After ClickHouse committed the segment's insert."""
        self.remove_many([segment])

    def remove_many(self, segments: list[Segment]) -> None:
        gone = {s.seq for s in segments}
        with self._lock:
            self._sealed = [s for s in self._sealed if s.seq not in gone]
        for segment in segments:
            try:
                os.unlink(segment.path)
            except FileNotFoundError:
                pass
        fsync_dir(self.directory)

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._fd is not None:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    log.error("write-ahead log: final sync failed: %s", exc)
                os.close(self._fd)
                self._fd = None
                if not self._ends:
                    try:
                        os.unlink(self._path(self._seq))
                    except FileNotFoundError:
                        pass
