"""CSV that spreadsheet apps open as data, never as formulas.

A cell a spreadsheet would read as a formula starts with ``= + - @``, or with a tab or carriage
return (which some apps strip before they look), possibly after leading spaces or line breaks.
Such a text cell gets a leading ``'``, which spreadsheets take as "this is text", and every text
cell is written quoted, so a cell holding a ``\\r`` or a tab can never be split or trimmed on its way
in. Numbers stay numbers: a negative amount is not a formula.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_STARTS) or value.lstrip(" \t\r\n").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def dumps(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([cell(c) for c in columns])
    for row in rows:
        writer.writerow(["" if v is None else cell(v) for v in row])
    return buf.getvalue()
