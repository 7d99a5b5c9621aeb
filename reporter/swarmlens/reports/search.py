"""Task search: keywords (text indexes on input and output), date range, user, agent, status; a
count of the matches and the words to highlight.

Matching: each word of four characters or more matches the start of a word ("refun" finds "refund",
not "nonrefundable"): ClickHouse finds the candidates with ``LIKE '%refun%'`` on the text indexes'
token dictionaries rather than on every row, and a regular expression anchored at a word's start
keeps the right ones; up to ``PREFIX_WORDS`` words match that way. Shorter words, and any beyond
those, match whole words only: a pattern of one to three letters matches too many dictionary tokens
to stay fast. All words must occur, in the input or in the output.
"""

from __future__ import annotations

import re
from typing import Any

from swarmlens.reports.common import Period, q

STATUSES = ("", "ok", "error")
PREFIX_WORDS = 4
MIN_PREFIX_LEN = 4
# The count stops here: "10,000+" says enough, and counting all of a common word costs a scan.
COUNT_CAP = 10_000

# The text indexes split on ASCII non-alphanumerics and lower-case; so do the search words.
_WORD = re.compile(r"[0-9a-z\u0080-\U0010ffff]+")


def words_of(text: str) -> list[str]:
    seen: list[str] = []
    for w in _WORD.findall((text or "").lower()):
        if w not in seen:
            seen.append(w)
    return seen


def match_params(text: str) -> dict[str, Any]:
    """The query files' keyword parameters: ``q``, the words matched whole (hasAllTokens);
    ``p1``..``p4``, LIKE patterns of the words matched from their start, and ``r1``..``r4``, the same
    words as regular expressions anchored where a word starts ('' = none)."""
    words = words_of(text)
    prefixes = [w for w in words if len(w) >= MIN_PREFIX_LEN][:PREFIX_WORDS]
    whole = [w for w in words if w not in prefixes]
    params: dict[str, Any] = {"q": " ".join(whole)}
    for i in range(PREFIX_WORDS):
        word = prefixes[i] if i < len(prefixes) else ""
        params[f"p{i + 1}"] = f"%{word}%" if word else ""
        # A word starts at the text's start or after a character the index splits on (RE2 syntax;
        # the words hold letters and digits only, so they need no escaping).
        params[f"r{i + 1}"] = f"(^|[^0-9a-z\\x{{80}}-\\x{{10FFFF}}]){word}" if word else ""
    return params


def highlight_terms(text: str) -> dict[str, list[str]]:
    """The words as the page highlights them: within words, or whole words."""
    p = match_params(text)
    return {"start": [p[f"p{i + 1}"].strip("%") for i in range(PREFIX_WORDS) if p[f"p{i + 1}"]],
            "whole": p["q"].split()}


def filter_params(*, period: Period, q_text: str, user: str, agent: str, status: str) -> dict[str, Any]:
    return {"start": period.start_ts, "end": period.end_ts, "user": user, "agent": agent, "status": status,
            **match_params(q_text)}


def search(client, config, *, period: Period, q_text: str, user: str, agent: str, status: str, limit: int,
           cursor_params: dict[str, Any]) -> list[dict[str, Any]]:
    return q(client, config, "search_tasks", limit=limit + 1, **cursor_params,
             **filter_params(period=period, q_text=q_text, user=user, agent=agent, status=status))


def count(client, config, *, period: Period, q_text: str, user: str, agent: str, status: str) -> int:
    """How many tasks match, up to COUNT_CAP + 1 (more than the cap reads as "10,000+")."""
    rows = q(client, config, "search_count", cap=COUNT_CAP + 1,
             **filter_params(period=period, q_text=q_text, user=user, agent=agent, status=status))
    return int(rows[0]["tasks"]) if rows else 0
