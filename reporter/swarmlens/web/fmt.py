"""Jinja filters: numbers, money, percentages, times, durations, JSON-looking text."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any


def num(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def usd(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v and abs(v) < 0.01:
        return f"${v:,.4f}"
    return f"${v:,.2f}"


def pct(value: Any, signed: bool = False) -> str:
    """A ratio (0.25) as a percentage ("25.0%")."""
    if value is None:
        return "–"
    v = float(value) * 100
    return f"{v:+.1f}%" if signed else f"{v:.1f}%"


def dt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value or "")


def duration(ms: Any) -> str:
    ms = float(ms or 0)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60000)} min {ms % 60000 / 1000:.0f} s"


# Deeper JSON is shown as the text it is: parsing and indenting recurse once per level, and a
# task input of 50,000 nested brackets would otherwise exhaust the stack (RecursionError).
PRETTY_MAX_DEPTH = 100


def json_depth(text: str, limit: int) -> int:
    """The bracket nesting of JSON-looking text, outside strings; stops counting past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def pretty(text: Any) -> dict[str, Any]:
    """Task input/output for display: JSON pretty-printed when it parses (and nests at most
    PRETTY_MAX_DEPTH levels), the text as it is otherwise. The template escapes it either way."""
    raw = "" if text is None else str(text)
    stripped = raw.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]") and \
            json_depth(stripped, PRETTY_MAX_DEPTH) <= PRETTY_MAX_DEPTH:
        try:
            return {"json": True, "text": json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)}
        except (ValueError, RecursionError):
            pass
    return {"json": False, "text": raw}


def short(value: Any, length: int = 90) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


FILTERS = {"num": num, "usd": usd, "pct": pct, "dt": dt, "duration": duration, "pretty": pretty, "short": short}
