"""A sender's retry, recognised: the digests of the requests logged in the last RETRY_WINDOW seconds.

A sender that never heard the answer to a request (this process was killed after the fsync, a
timeout) sends the same bytes again. The digest of every request logged in the last ten minutes
is kept, on disk too, so the retry is acknowledged without being logged twice.
"""

from __future__ import annotations

import os
import threading
import time

from swarmlens.ingest.wal import Segment

DIGEST_BYTES = 16
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
