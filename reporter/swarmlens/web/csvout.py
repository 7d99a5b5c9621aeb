"""CSV downloads of task lists (a user's history, search results): one row per task, numbers as
swarmlens.render.fmt.plain gives them, and no cell that a spreadsheet would run as a formula."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from flask import Response

from swarmlens.render import fmt
from swarmlens.render import csvsafe

TASK_COLUMNS = ("task_id", "start_time", "user_id", "status", "error_type", "agents", "total_tokens",
                "duration_ms", "input", "output")
# At most this many rows in one file, newest first; a narrower date range gets the rest.
MAX_ROWS = 10_000


# The formula rule and the quoting are swarmlens.render.csvsafe's, the same for every CSV download.
safe = csvsafe.cell


def task_cells(t: dict[str, Any]) -> list[Any]:
    out = []
    for c in TASK_COLUMNS:
        v = t.get(c)
        if c == "agents":
            v = " > ".join(v or [])
        elif c in ("total_tokens", "duration_ms"):
            v = fmt.plain(v, "count")
        elif c == "start_time":
            v = fmt.dt(v)
        out.append(safe(v))
    return out


def response(columns: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    body = csvsafe.dumps(columns, rows)
    # The file name is ours (ids are checked before they get here), quoted all the same.
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in filename)
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def tasks_response(tasks: Iterable[dict[str, Any]], filename: str) -> Response:
    return response(TASK_COLUMNS, (task_cells(t) for t in tasks), filename)
