"""How many queries each user may run at once on the embedded endpoint, and how long one waits.

The engine has a fixed pool of connections. Without a per-user limit, one analyst with eight slow
queries holds every connection and the reporter and the receiver wait behind them. Each user gets
at most `per_user` queries running at once (sessions included); the rest wait in line for up to
`queue_seconds`, then get 503 with Code 202 (TOO_MANY_SIMULTANEOUS_QUERIES), as a server answers
when max_concurrent_queries_for_user is reached, and clients retry.
"""

from __future__ import annotations

import threading
import time

from swarmlens.embedded.errors import ClickHouseError


class Admission:
    def __init__(self, per_user: int, queue_seconds: float):
        self.per_user = max(1, per_user)
        self.queue_seconds = queue_seconds
        self._cond = threading.Condition()
        self._running: dict[str, int] = {}
        self._closed = False

    def enter(self, user: str) -> None:
        deadline = time.monotonic() + self.queue_seconds
        with self._cond:
            while self._running.get(user, 0) >= self.per_user:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise ClickHouseError(
                        202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                        f"Too many simultaneous queries for user {user[:100]}: {self.per_user} are running and this one "
                        f"waited {self.queue_seconds:g} s for its turn (SWARMLENS_CLICKHOUSE_MAX_QUERIES_PER_USER)",
                        http_status=503)
                self._cond.wait(left)
            self._running[user] = self._running.get(user, 0) + 1

    def leave(self, user: str) -> None:
        with self._cond:
            n = self._running.get(user, 0) - 1
            if n > 0:
                self._running[user] = n
            else:
                self._running.pop(user, None)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
