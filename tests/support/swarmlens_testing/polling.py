"""Polling shared by the test packages: rows derived by materialized views appear just after the
insert returns, and servers and collectors start asynchronously. Tests and benchmarks import it
from the installed swarmlens_testing package (tests cannot import a conftest under
--import-mode=importlib)."""

from __future__ import annotations

import time
from typing import Any, Callable


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool] = bool, timeout: float = 30.0,
         interval: float = 0.1) -> Any:
    """Calls fetch() until done(value) or the timeout; returns the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """The first truthy value of check(); an AssertionError naming `what` after the timeout."""
    last = poll(check, bool, timeout, interval)
    if not last:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
    return last


def rows_become(client, sql: str, expected: list, timeout: float = 30.0, **parameters: Any) -> list:
    """The rows of `sql` once they equal `expected`, or the last rows read at the timeout."""
    return poll(lambda: client.query(sql, parameters=parameters or None).result_rows,
                lambda rows: rows == expected, timeout, 0.05)
