"""What the OTLP receiver says about itself on disk, readable without loading the receiver (and its
protobuf modules): ``status.json``, written every second, and the ``pause`` file by which a rollup
check holds its inserts back. `swarmlens status` and `swarmlens db check` read these."""

from __future__ import annotations

import contextlib
import json
import os
import time

PAUSE_FILE = "pause"
STATUS_FILE = "status.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def pause_holder(directory: str) -> int | None:
    """The pid that asked the inserter to hold back, if it still lives."""
    try:
        with open(os.path.join(directory, PAUSE_FILE), encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and _alive(pid) else None


def read_status(directory: str) -> dict:
    try:
        with open(os.path.join(directory, STATUS_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def inserts_paused(directory: str, timeout: float = 60.0):
    """Holds back the inserts of the receiver of ``directory`` (it keeps acknowledging into its log)
    for the time of the block, so that nothing writes the span table meanwhile. Waits until an
    insert in flight has finished; returns at once when no receiver runs there."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, PAUSE_FILE)
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    try:
        deadline = time.monotonic() + timeout
        while True:
            st = read_status(directory)
            if not st or not _alive(int(st.get("pid") or 0)) or st.get("paused"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the OTLP receiver did not hold its inserts back within "
                                   f"{timeout:.0f} s (is an insert stuck?)")
            time.sleep(0.1)
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
