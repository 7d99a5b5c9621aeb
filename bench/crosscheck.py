"""Comparing the answers of the designs: rows normalised to plain values (numbers as floats, dates
and times as ISO text in UTC, task ids as 32 hex digits, user numbers as swarmlens' user ids), then
compared row by row: the key columns exactly, every other number within a relative tolerance.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

EXACT = 1e-9  # float sums in a different order


def norm_value(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, Decimal)):
        return float(v)
    if isinstance(v, uuid.UUID):
        return v.hex
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return tuple(norm_value(x) for x in v)
    return v


def norm_rows(rows, pick=None) -> list[tuple]:
    out = []
    for r in rows:
        r = tuple(r)
        if pick is not None:
            r = tuple(pick(r))
        out.append(tuple(norm_value(v) for v in r))
    return out


def _close(a, b, tol: float) -> tuple[bool, float]:
    if a is None or b is None:
        return True, 0.0  # a figure one design does not compute (None on purpose)
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True, 0.0
        scale = max(abs(a), abs(b))
        rel = abs(a - b) / scale if scale else 0.0
        return rel <= tol, rel
    return a == b, 0.0 if a == b else math.inf


def compare(ref: list[tuple], other: list[tuple], keys: int, tol: float) -> dict:
    """{ok, max_rel, first difference}. With keys > 0, rows are matched on their first ``keys``
    columns (the order of equal sort values may differ); without, row by row."""
    if len(ref) != len(other):
        return {"ok": False, "max_rel": math.inf, "diff": f"{len(other)} rows against {len(ref)}",
                "rows": len(ref)}
    if keys:
        ref_by = {r[:keys]: r for r in ref}
        pairs = [(r, next((o for o in other if o[:keys] == k), None)) for k, r in ref_by.items()] \
            if len(ref) <= 50 else None
        if pairs is None:
            other_by = {o[:keys]: o for o in other}
            pairs = [(r, other_by.get(k)) for k, r in ref_by.items()]
    else:
        pairs = list(zip(ref, other))
    worst, first = 0.0, None
    ok = True
    bad_rows = 0
    for r, o in pairs:
        if o is None:
            return {"ok": False, "max_rel": math.inf, "diff": f"row {r[:max(keys, 1)]} missing", "rows": len(ref)}
        if len(r) != len(o):
            return {"ok": False, "max_rel": math.inf, "diff": f"{len(o)} columns against {len(r)}", "rows": len(ref)}
        row_ok = True
        for i, (a, b) in enumerate(zip(r, o)):
            good, rel = _close(a, b, EXACT if i < keys else tol)
            worst = max(worst, rel if math.isfinite(rel) else math.inf)
            if not good:
                row_ok = False
                if ok:
                    first = f"row {r[:max(keys, 1)]}, column {i + 1}: {b!r} against {a!r}"
                ok = False
        bad_rows += not row_ok
    return {"ok": ok, "max_rel": worst, "diff": first, "rows": len(ref), "bad_rows": bad_rows}
