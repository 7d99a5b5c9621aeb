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


def pretty(text: Any) -> dict[str, Any]:
    """Task input/output for display: JSON pretty-printed when it parses, the text as it is otherwise.
    The template escapes it either way."""
    raw = "" if text is None else str(text)
    stripped = raw.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return {"json": True, "text": json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)}
        except ValueError:
            pass
    return {"json": False, "text": raw}


def short(value: Any, length: int = 90) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


FILTERS = {"num": num, "usd": usd, "pct": pct, "dt": dt, "duration": duration, "pretty": pretty, "short": short}
