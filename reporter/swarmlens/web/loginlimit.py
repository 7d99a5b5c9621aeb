"""Failed sign-ins, counted per client address and per ops login, so /login cannot be used to guess
passwords: past SWARMLENS_LOGIN_FAILURES_PER_ADDRESS failures from one address, or
SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT failures on one login, within SWARMLENS_LOGIN_WINDOW_SECONDS,
/login answers 429 with Retry-After until the oldest counted failure leaves the window.

The counts live in a small SQLite file in SWARMLENS_DATA_DIR, so every gunicorn worker (and thread)
of one machine shares them and a restart does not reset them; several reporters behind one load
balancer each count their own. A locked account is refused before its password is checked, so
guesses stop teaching anything; a successful sign-in clears that login's count.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Mapping

FILE_NAME = "reporter_logins.sqlite"


class LoginLimiter:
    def __init__(self, config: Mapping[str, Any]):
        self.path = os.path.join(config["SWARMLENS_DATA_DIR"], FILE_NAME)
        self.per_address = max(1, int(config["SWARMLENS_LOGIN_FAILURES_PER_ADDRESS"]))
        self.per_account = max(1, int(config["SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT"]))
        self.window = max(1, int(config["SWARMLENS_LOGIN_WINDOW_SECONDS"]))
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        if not self._ready:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS failures_key_at ON failures (key, at)")
            self._ready = True
        return conn

    def _keys(self, address: str, login: str) -> list[tuple[str, int]]:
        keys = [("addr:" + (address or "unknown")[:64], self.per_address)]
        if login:
            keys.append(("login:" + login.strip().lower()[:64], self.per_account))
        return keys

    def retry_after(self, address: str, login: str = "") -> int | None:
        """Seconds until a sign-in from ``address`` to ``login`` may be tried again; None if now."""
        now = time.time()
        wait = 0.0
        conn = self._connect()
        try:
            for key, limit in self._keys(address, login):
                rows = conn.execute("SELECT at FROM failures WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
                                    (key, now - self.window, limit)).fetchall()
                if len(rows) >= limit:
                    # Free again when the limit-th newest failure leaves the window.
                    wait = max(wait, rows[-1][0] + self.window - now)
        finally:
            conn.close()
        return max(1, int(wait + 0.999)) if wait > 0 else None

    def failed(self, address: str, login: str = "") -> None:
        now = time.time()
        conn = self._connect()
        try:
            conn.executemany("INSERT INTO failures (key, at) VALUES (?, ?)",
                             [(key, now) for key, _ in self._keys(address, login)])
            conn.execute("DELETE FROM failures WHERE at < ?", (now - self.window,))
        finally:
            conn.close()

    def succeeded(self, login: str) -> None:
        conn = self._connect()
        try:
            conn.execute("DELETE FROM failures WHERE key = ?", ("login:" + login.strip().lower()[:64],))
        finally:
            conn.close()
