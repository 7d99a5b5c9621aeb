"""Task search: keyword (text indexes on input and output), date range, user, agent, status."""

from __future__ import annotations

from typing import Any

from swarmlens.reports.common import Period, q

STATUSES = ("", "ok", "error")


def search(client, config, *, period: Period, q_text: str, user: str, agent: str, status: str, limit: int,
           cursor_params: dict[str, Any]) -> list[dict[str, Any]]:
    return q(client, config, "search_tasks", start=period.start_ts, end=period.end_ts, q=q_text, user=user,
             agent=agent, status=status, limit=limit + 1, **cursor_params)
