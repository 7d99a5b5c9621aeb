"""Feedback: a 👍 or 👎 per (task, voter) with an optional comment; the latest vote wins (the table
is a ReplacingMergeTree on (task_id, user_id) versioned by created_at)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from swarmlens.errors import InvalidInput
from swarmlens.reports.common import Period, parallel, q, q1, ratio

MAX_COMMENT = 2000
VOTES = {"up": 1, "down": -1, "1": 1, "-1": -1, "+1": 1, "👍": 1, "👎": -1}


class InvalidFeedback(InvalidInput):
    """A vote that is not up/down, or a comment that is too long."""


def parse_vote(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidFeedback("vote must be 'up' or 'down' (or 1 / -1)")
    if isinstance(value, int) and value in (1, -1):
        return value
    if isinstance(value, str) and value.strip().lower() in VOTES:
        return VOTES[value.strip().lower()]
    raise InvalidFeedback("vote must be 'up' or 'down' (or 1 / -1)")


def parse_comment(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidFeedback("comment must be a string")
    value = value.strip()
    if len(value) > MAX_COMMENT:
        raise InvalidFeedback(f"comment is longer than {MAX_COMMENT} characters")
    if "\x00" in value:
        raise InvalidFeedback("comment contains a NUL character")
    return value


def record(client, config, *, task: Mapping[str, Any], voter: str, vote: Any, comment: Any) -> dict[str, Any]:
    """Stores a vote on ``task`` (a row of the tasks table). The row carries the task's start time and
    agents, so that the ratings per agent read the feedback table alone (schema 0007)."""
    row = {"task_id": task["task_id"], "user_id": voter, "vote": parse_vote(vote), "comment": parse_comment(comment),
           "created_at": datetime.now(timezone.utc)}
    stored = {**row, "task_start_time": task["start_time"], "task_agents": list(task.get("agents") or [])}
    client.insert("feedback", [list(stored.values())], column_names=list(stored),
                  database=config["SWARMLENS_DATABASE"])
    return row


VOTE_FILTERS = {"all": 0, "up": 1, "down": -1}


def feedback_list(client, config, period: Period, vote: int, limit: int, agent: str = "",
                  page: int = 1) -> dict[str, Any]:
    """One page of the latest votes in ``period`` (``vote`` 1 up, -1 down, 0 both; ``agent`` the
    tasks it took part in, '' any), newest first, with the counts of every page."""
    args = {"start": period.start_ts, "end": period.end_ts, "vote": vote, "agent": agent}
    r = parallel(rows=lambda: q(client, config, "feedback_list", limit=limit, offset=(page - 1) * limit, **args),
                 summary=lambda: q1(client, config, "feedback_summary", **args))
    up, down = int(r["summary"].get("up") or 0), int(r["summary"].get("down") or 0)
    return {"period": period.as_dict(), "vote": vote, "agent": agent, "feedback": r["rows"],
            "summary": {"up": up, "down": down, "votes": up + down, "share_up": ratio(up, up + down)},
            "page": page, "pages": max(1, -(-(up + down) // limit)), "per_page": limit}
