"""``DATA_DIR/up-state.json``: what the `swarmlens up` running on a data directory wrote about
itself (its children, restarts, URLs), for `swarmlens status` and for commands that look for its
ClickHouse endpoint."""

from __future__ import annotations

import json
import os

STATE_FILE = "up-state.json"


def write_state(data_dir: str, doc: dict) -> None:
    """Replaces the state file at once (a reader never sees half of it); a failure is not fatal."""
    path = os.path.join(data_dir, STATE_FILE)
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


def pid_alive(pid) -> bool:
    """Whether a process with this id runs (one of another user's counts)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (ValueError, TypeError, OverflowError):
        return False


def running_clickhouse_url(data_dir: str) -> str | None:
    """The ClickHouse URL of the `swarmlens up` running on data_dir, if one runs."""
    state = read_state(data_dir)
    if state.get("state") == "stopped" or not pid_alive(state.get("pid")):
        return None
    return (state.get("urls") or {}).get("clickhouse")


def read_state(data_dir: str) -> dict:
    """What the last `swarmlens up` on this data directory wrote about itself ({} when nothing)."""
    try:
        with open(os.path.join(data_dir, STATE_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}

