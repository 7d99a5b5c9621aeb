"""Every number the reporter shows, formatted in one place: pages (as Jinja filters), PDFs and CSVs.

The rules:

- counts (tasks, tokens, runs) are whole numbers with thousands separators;
- averages (tokens per task) always have one decimal, whatever their size;
- money, the one rule on every page, PDF, CSV and mail: cents ("$0.03", "$1,234.50") from one cent
  up, more digits only below a cent (two significant ones: "$0.0077", "$0.000042"), and a non-zero
  amount never reads "$0.00"; each amount by itself, so a table never shows "$0.02895" or
  "$0.00000" because a neighbour is small;
- percentages have one decimal and are cut, never rounded, towards the next threshold: 99.9993%
  of a quota reads "99.9%", since "100.0%" would claim a limit that is not reached; a non-zero
  share below 0.1% reads "<0.1%";
- a change is relative ("+12.5%") for amounts and in percentage points ("+0.3 pp") for rates,
  and its colour says whether it is good for that measure (``direction``), not whether it rose.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable

from markupsafe import Markup, escape

DASH = "–"

# Whether a rise is good ("up"), bad ("down") or neither ("neutral") for a measure, by the key it
# has in the reports' dicts. Spend and failures are costs to the operator; activity is what the
# product is for; token volume alone says neither.
DIRECTION = {
    "tasks": "up", "runs": "up", "active_users": "up", "users": "up", "calls": "neutral",
    "tokens": "neutral", "input_tokens": "neutral", "output_tokens": "neutral", "previous_tokens": "neutral",
    "cost_usd": "down", "errors": "down", "error_rate": "down",
    "avg_tokens_per_task": "down", "p95_tokens_per_task": "down",
    "score": "up",
}
# Measures that are rates (a share of something): their changes are in percentage points.
RATES = frozenset({"error_rate", "score"})

MONEY_MAX_PLACES = 6


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def num(value: Any) -> str:
    """A count: a whole number with thousands separators ("1,016")."""
    v = _float(value)
    if v is None:
        return DASH
    return f"{int(Decimal(repr(v)).quantize(Decimal(1), ROUND_HALF_EVEN)):,}"


def avg(value: Any) -> str:
    """An average: always one decimal ("914.0", "1,016.5")."""
    v = _float(value)
    if v is None:
        return DASH
    return f"{v:,.1f}"


def money_places(value: Any) -> int:
    """Decimals that show ``value`` in dollars: two from a cent up, two significant digits below."""
    v = abs(_float(value) or 0.0)
    v = float(f"{v:.1e}")  # rounded to two significant digits first: 0.009999 is a cent, 9.99e-05 is 0.00010
    if v == 0 or v >= 0.01:
        return 2
    # 0.0077 -> 4, 0.00042 -> 5: the first significant digit and one more.
    return min(MONEY_MAX_PLACES, -math.floor(math.log10(v)) + 1)


def usd(value: Any) -> str:
    """Money in US dollars: two decimals from a cent up, two significant digits below. A non-zero
    amount never reads as zero."""
    v = _float(value)
    if v is None:
        return DASH
    if v != 0 and abs(v) < 10 ** -MONEY_MAX_PLACES:
        return f"<${10 ** -MONEY_MAX_PLACES:.{MONEY_MAX_PLACES}f}" if v > 0 else f"-<${10 ** -MONEY_MAX_PLACES:.{MONEY_MAX_PLACES}f}"
    return ("-$" if v < 0 else "$") + f"{abs(v):,.{money_places(v)}f}"


def _cut(percent: float) -> Decimal:
    """One decimal, towards zero: a share is never shown as reaching a value it has not reached."""
    return Decimal(repr(percent)).quantize(Decimal("0.1"), ROUND_DOWN)


def percent(value: Any) -> str:
    """A value already in percent (a quota's 99.9993) as "99.9%"."""
    v = _float(value)
    if v is None:
        return DASH
    if 0 < abs(v) < 0.1:
        return "<0.1%" if v > 0 else "-<0.1%"
    return f"{_cut(v)}%"


def pct(value: Any, signed: bool = False) -> str:
    """A ratio (0.25) as a percentage ("25.0%"), cut to one decimal (see ``percent``). ``signed``
    is for relative changes, which are rounded and carry their sign ("+12.5%")."""
    v = _float(value)
    if v is None:
        return DASH
    if signed:
        return f"{v * 100:+,.1f}%"
    return percent(v * 100)


def points(value: Any) -> str:
    """A change of a rate, as percentage points: 0.003 (a ratio difference) is "+0.3 pp"."""
    v = _float(value)
    if v is None:
        return DASH
    return f"{v * 100:+.1f} pp"


def delta(value: Any, measure: str = "") -> str:
    """A change of ``measure``: percentage points for rates, a relative percentage otherwise."""
    return points(value) if measure in RATES else pct(value, signed=True)


def tone(value: Any, measure: str = "") -> str:
    """"good", "bad" or "neutral" for a change of ``measure`` (a CSS class on pages, a colour in PDFs)."""
    v = _float(value)
    way = DIRECTION.get(measure, "neutral")
    # A change that rounds to zero is no change, whatever its sign.
    if v is None or way == "neutral" or round(v * 1000) == 0:
        return "neutral"
    return "good" if (v > 0) == (way == "up") else "bad"


def plain(value: Any, kind: str) -> Any:
    """A CSV cell: the number itself, without separators or units, with the decimals of its kind
    (count: 0, average: 1, money: 6, ratio: 4); text and dates as they are."""
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return dt(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return value
    v = float(value)
    if math.isnan(v):
        return ""
    if kind == "count":
        return int(round(v))
    if kind == "average":
        return round(v, 1)
    if kind == "money":
        return round(v, MONEY_MAX_PLACES)
    if kind == "ratio":
        return round(v, 4)
    return value


def kind_of(column: str) -> str:
    """The kind of a CSV column by its name (the reports' dict keys)."""
    if column.endswith("usd") or column.startswith("usd_") or column == "cost":
        return "money"
    if column in ("change", "error_rate", "score", "avg_change") or column.endswith("_rate"):
        return "ratio"
    if column.startswith("avg_") or column.startswith("p95_"):
        return "average"
    return "count"


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


def _term_pattern(terms: dict[str, list[str]] | None) -> re.Pattern | None:
    if not terms:
        return None
    # A word that starts a longer one marks the whole of that word ("refun" marks "refund").
    parts = [rf"(?<![0-9A-Za-z]){re.escape(w)}[0-9A-Za-z]*" for w in sorted(terms.get("start", []), key=len, reverse=True)]
    parts += [rf"(?<![0-9A-Za-z]){re.escape(w)}(?![0-9A-Za-z])" for w in terms.get("whole", [])]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def highlight(value: Any, terms: dict[str, list[str]] | None = None, length: int = 90) -> Markup:
    """Text cut to ``length`` around its first match, escaped, with the search words in <mark>
    (``terms`` as swarmlens.reports.search.highlight_terms gives them)."""
    text = " ".join(str(value or "").split())
    pattern = _term_pattern(terms)
    first = pattern.search(text) if pattern else None
    start = 0
    if first and first.end() > length - 10:
        start = max(0, first.start() - length // 3)
    snippet = text[start:start + length]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + length < len(text) else ""
    if not pattern:
        return Markup(escape(prefix + snippet + suffix))
    out, last = [escape(prefix)], 0
    for m in pattern.finditer(snippet):
        out.append(escape(snippet[last:m.start()]))
        out.append(Markup("<mark>") + escape(m.group(0)) + Markup("</mark>"))
        last = m.end()
    out.append(escape(snippet[last:] + suffix))
    return Markup("").join(out)


FILTERS = {"num": num, "avg": avg, "usd": usd, "pct": pct, "percent": percent, "points": points,
           "delta": delta, "tone": tone, "dt": dt, "duration": duration, "pretty": pretty, "short": short,
           "highlight": highlight}
