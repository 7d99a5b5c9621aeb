"""The children of `swarmlens up`: each one process group, stopped whole; the checks before and
while they start (ports free, a child answering)."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from swarmlens.stack import StackError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the parent dies, whatever killed it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@dataclass
class Child:
    """One child process, the leader of its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: str
    stop_grace: float = 30.0
    ready: Callable[[], bool] | None = field(default=None, repr=False)  # serving again (after a restart)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _log: object = field(default=None, repr=False)
    restarts: int = 0
    crashes: list[float] = field(default_factory=list)  # monotonic times of recent crashes
    restart_at: float | None = None                      # when a crashed child is due to start again
    last_exit: int | None = None
    started_at: float = 0.0

    def start(self) -> "Child":
        if self._log is not None:
            self._log.close()
        self.started_at = time.time()
        self._log = open(self.log_path, "ab", buffering=0)
        self._log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the leader and the time it needs to stop cleanly; then nothing of its group survives."""
        if self.proc is None:
            return None
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop within {self.stop_grace:.0f} s; killing it", flush=True)
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Grandchildren (gunicorn workers, ...) normally leave with their leader; make sure of it.
        deadline = time.monotonic() + 5
        sig = signal.SIGTERM
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                sig = signal.SIGKILL
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


def connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_ports(ports: list[tuple[str, str, int]]) -> dict[str, int]:
    """Binds each (label, host, port) for a moment, the way the servers will (SO_REUSEADDR), and
    raises StackError naming every port that is taken. Port 0 picks a free port; returns the ports."""
    chosen: dict[str, int] = {}
    taken: list[str] = []
    seen: dict[int, str] = {}
    for label, host, port in ports:
        if port and port in seen:
            taken.append(f"port {port} is given both to {seen[port]} and to {label}")
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
                taken.append(f"{label} port {port} on {host} {why}")
                continue
            chosen[label] = s.getsockname()[1]
            seen[chosen[label]] = label
    if taken:
        raise StackError("; ".join(taken) + ". Free the port or choose another (see `swarmlens up --help`).")
    return chosen


def http_ok(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of a GET (any status counts as serving), None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_ready(child: Child, ready: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise StackError(f"{child.name} exited with status {child.proc.returncode} before {what}; "
                             f"its log ({child.log_path}) ends with:\n{child.log_tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise StackError(f"{child.name} was not {what} within {timeout:.0f} s; its log ({child.log_path}) ends with:\n"
                     f"{child.log_tail()}")


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False
