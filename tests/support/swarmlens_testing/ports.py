"""Free loopback ports for tests, benchmarks and `--port 0` style setups.

Binding port 0 and closing the socket lets the kernel hand the same port out again at once, so
two calls in a row can return one port twice; this keeps every port it gave out and never
returns one twice in a process."""

from __future__ import annotations

import socket
import threading

_given: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    with _lock:
        for _ in range(100):
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise OSError("no free port found")
