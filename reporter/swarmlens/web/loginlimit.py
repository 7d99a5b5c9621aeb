"""Failed sign-ins, counted so /login cannot be used to guess passwords, nor to lock the owner out.

Three counts over the last SWARMLENS_LOGIN_WINDOW_SECONDS:

- per (ops login, client address): past SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT failures that address
  may not try that login again (429 with Retry-After) until the oldest failure leaves the window;
- per client address, whatever the login: past SWARMLENS_LOGIN_FAILURES_PER_ADDRESS failures the
  address may not sign in at all until the window moves on;
- per ops login, from every address: past SWARMLENS_LOGIN_FAILURES_PER_ACCOUNT failures the login is
  slowed down, not locked: an address that has failed on it must wait a delay that doubles with each
  further failure (1 s, 2 s, 4 s, ... at most the window) after the login's last failure. An address
  with no failure on that login is not slowed, so the owner signing in from their own machine is
  never locked out by guesses from elsewhere, and each new address an attacker brings gets one guess
  before it is slowed too.

A refused attempt is refused before its password is checked, so guesses stop teaching anything; a
successful sign-in clears the count of that login from that address.

The counts live in a small SQLite file in SWARMLENS_DATA_DIR, so every gunicorn worker (and thread)
of one machine shares them and a restart does not reset them; several reporters behind one load
balancer each count their own.
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

    @staticmethod
    def _addr(address: str) -> str:
        return "addr:" + (address or "unknown")[:64]

    @staticmethod
    def _login(login: str) -> str:
        return "login:" + login.strip().lower()[:64]

    def _pair(self, address: str, login: str) -> str:
        return "pair:" + login.strip().lower()[:64] + "|" + (address or "unknown")[:64]

    def retry_after(self, address: str, login: str = "") -> int | None:
        """Seconds until a sign-in from ``address`` to ``login`` may be tried again; None if now."""
        now = time.time()
        since = now - self.window
        wait = 0.0
        conn = self._connect()
        try:
            hard = [(self._addr(address), self.per_address)]
            if login:
                hard.append((self._pair(address, login), self.per_account))
            for key, limit in hard:
                rows = conn.execute("SELECT at FROM failures WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
                                    (key, since, limit)).fetchall()
                if len(rows) >= limit:
                    # Free again when the limit-th newest failure leaves the window.
                    wait = max(wait, rows[-1][0] + self.window - now)
            if login:
                n, last = conn.execute("SELECT count(*), max(at) FROM failures WHERE key = ? AND at > ?",
                                       (self._login(login), since)).fetchone()
                if n >= self.per_account:
                    mine = conn.execute("SELECT count(*) FROM failures WHERE key = ? AND at > ?",
                                        (self._pair(address, login), since)).fetchone()[0]
                    if mine:  # slowed: only addresses that have failed on this login
                        delay = min(float(self.window), 2.0 ** min(n - self.per_account, 30))
                        wait = max(wait, last + delay - now)
        finally:
            conn.close()
        return max(1, int(wait + 0.999)) if wait > 0 else None

    def failed(self, address: str, login: str = "") -> None:
        now = time.time()
        keys = [self._addr(address)]
        if login:
            keys += [self._login(login), self._pair(address, login)]
        conn = self._connect()
        try:
            conn.executemany("INSERT INTO failures (key, at) VALUES (?, ?)", [(key, now) for key in keys])
            conn.execute("DELETE FROM failures WHERE at < ?", (now - self.window,))
        finally:
            conn.close()

    def succeeded(self, login: str, address: str = "") -> None:
        conn = self._connect()
        try:
            conn.execute("DELETE FROM failures WHERE key = ?", (self._pair(address, login),))
        finally:
            conn.close()
