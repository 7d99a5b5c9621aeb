"""Geometry for the inline SVG charts (templates/_partials.html draws them).

Charts are plain SVG in the page, so they print, need no script and no external library. These
functions only compute coordinates; the same data stays in the page's JSON.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def nice_step(span: float, target: int = 4, integer: bool = False) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into about ``target`` parts;
    at least 1 when the axis counts whole things."""
    if span <= 0:
        return 1.0
    raw = span / target
    exp = 10 ** math.floor(math.log10(raw))
    step = next((m * exp for m in (1, 2, 5, 10) if raw <= m * exp), 10 * exp)
    return max(1.0, math.ceil(step)) if integer else step


def axis(top_value: float, integer: bool = False, target: int = 4) -> tuple[float, list[float]]:
    """A round axis from 0: its maximum (a whole number of steps at or above ``top_value``) and its
    ticks. Counts get whole-number steps, so no tick reads "12.5 tasks"."""
    step = nice_step(max(float(top_value), 0.0) or 1.0, target, integer)
    steps = max(1, math.ceil(round(float(top_value) / step, 9))) if top_value > 0 else 1
    top = step * steps
    return top, [round(step * i, 10) for i in range(steps + 1)]


def compact(value: float) -> str:
    v = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            s = f"{v / size:.1f}".rstrip("0").rstrip(".")
            return s + unit
    return f"{v:.0f}" if v.is_integer() else f"{v:.2f}"


def trend(rows: Sequence[dict[str, Any]], bar_key: str, line_key: str | None = None, *, width: int = 760,
          height: int = 220, label_key: str = "day", bar_integer: bool = True,
          line_integer: bool = True) -> dict[str, Any]:
    """Bars of ``bar_key`` per row, optionally a line of ``line_key`` on its own scale. Axes of
    counts (``*_integer``) have whole-number ticks. ``empty`` is true when every value is zero, so
    that the page can say so instead of drawing a flat chart."""
    left, right, top, bottom = 56, 48 if line_key else 12, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(rows))
    bar_values = [float(r.get(bar_key) or 0) for r in rows]
    bar_max, bar_ticks = axis(max(bar_values + [0]), bar_integer)
    slot = plot_w / n
    bars = []
    for i, r in enumerate(rows):
        v = bar_values[i]
        h = plot_h * v / bar_max
        label = r.get(label_key)
        text = label.strftime("%d %b") if hasattr(label, "strftime") else str(label)
        bars.append({"x": round(left + i * slot + slot * 0.15, 2), "y": round(top + plot_h - h, 2),
                     "w": round(max(1.0, slot * 0.7), 2), "h": round(h, 2), "value": v, "label": text,
                     "show_label": n <= 10 or i == n - 1 or (i % math.ceil(n / 8) == 0
                                                             and n - 1 - i >= math.ceil(n / 8) / 2),
                     "cx": round(left + i * slot + slot / 2, 2)})
    ticks = [{"y": round(top + plot_h - plot_h * t / bar_max, 2), "label": compact(t)} for t in bar_ticks]
    line = None
    line_values = [float(r.get(line_key) or 0) for r in rows] if line_key else []
    if line_key:
        line_max, line_ticks = axis(max(line_values + [0]), line_integer)
        pts = [(b["cx"], round(top + plot_h - plot_h * v / line_max, 2)) for b, v in zip(bars, line_values)]
        line = {"points": " ".join(f"{x},{y}" for x, y in pts), "dots": pts,
                "ticks": [{"y": round(top + plot_h - plot_h * t / line_max, 2), "label": compact(t)}
                          for t in line_ticks]}
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "bottom": top + plot_h, "bars": bars, "ticks": ticks, "line": line,
            "empty": not any(bar_values) and not any(line_values)}


def hbars(rows: Sequence[dict[str, Any]], value_key: str, label_key: str, *, width: int = 360) -> dict[str, Any]:
    """Horizontal bars, one per row (top agents, top users)."""
    top = max([float(r.get(value_key) or 0) for r in rows] + [0]) or 1.0
    row_h, label_w = 22, 130
    items = [{"y": i * row_h, "w": round((width - label_w - 60) * float(r.get(value_key) or 0) / top, 2),
              "label": str(r.get(label_key)), "value": compact(float(r.get(value_key) or 0))}
             for i, r in enumerate(rows)]
    return {"width": width, "height": max(row_h, row_h * len(items)), "label_w": label_w, "items": items}


def graph(edges: Sequence[dict[str, Any]], *, size: int = 460) -> dict[str, Any]:
    """A handoff graph: agents on a circle, one arrow per (from, to) with its count."""
    names: list[str] = []
    for e in edges:
        for n in (e["from_agent"], e["to_agent"]):
            if n not in names:
                names.append(n)
    cx = cy = size / 2
    radius = size / 2 - 70 if len(names) > 1 else 0
    pos = {}
    for i, n in enumerate(names):
        a = -math.pi / 2 + 2 * math.pi * i / max(1, len(names))
        pos[n] = (cx + radius * math.cos(a), cy + radius * math.sin(a))
    top = max([int(e["handoffs"]) for e in edges] + [1])
    node_r = 30
    arrows = []
    pairs = {(e["from_agent"], e["to_agent"]) for e in edges}
    for e in edges:
        (x1, y1), (x2, y2) = pos[e["from_agent"]], pos[e["to_agent"]]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1.0
        ux, uy = dx / dist, dy / dist
        # Two-way pairs bend apart so both arrows and their counts stay readable.
        bend = 28 if (e["to_agent"], e["from_agent"]) in pairs else 0
        sx, sy = x1 + ux * node_r, y1 + uy * node_r
        ex, ey = x2 - ux * (node_r + 6), y2 - uy * (node_r + 6)
        mx, my = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
        arrows.append({"d": f"M{sx:.1f},{sy:.1f} Q{mx:.1f},{my:.1f} {ex:.1f},{ey:.1f}",
                       "lx": round((sx + ex) / 4 + mx / 2, 1), "ly": round((sy + ey) / 4 + my / 2, 1),
                       "count": int(e["handoffs"]), "width": round(1.2 + 4 * int(e["handoffs"]) / top, 2),
                       "title": f"{e['from_agent']} → {e['to_agent']}: {e['handoffs']}"})
    nodes = [{"name": n, "x": round(x, 1), "y": round(y, 1), "r": node_r,
              "short": n if len(n) <= 14 else n[:13] + "…"} for n, (x, y) in pos.items()]
    return {"size": size, "nodes": nodes, "arrows": arrows}


def time_label(ms: float, step_ms: float) -> str:
    """A time axis label with the decimals its step needs: "0 ms", "250 ms", "1.5 s"."""
    if step_ms >= 1000 or ms >= 1000 and step_ms >= 100:
        decimals = 0 if step_ms % 1000 == 0 else (1 if step_ms % 100 == 0 else 2)
        return f"{ms / 1000:.{decimals}f} s"
    decimals = 0 if step_ms >= 1 and float(step_ms).is_integer() else 1
    return f"{ms:.{decimals}f} ms"


def waterfall(spans: Sequence[dict[str, Any]], total_ms: float, *, width: int = 760) -> dict[str, Any]:
    """Rows of a task's waterfall: each span's offset and length on one time axis, whose ticks are
    round (0/2/4/6/8 ms, never 0/2/4/5/7)."""
    label_w, row_h = 300, 24
    plot_w = width - label_w - 90
    total, tick_values = axis(max(float(total_ms), 0.001), integer=False, target=5)
    rows = []
    for i, s in enumerate(spans):
        x = label_w + plot_w * float(s["offset_ms"]) / total
        w = max(2.0, plot_w * float(s["duration_ms"]) / total)
        rows.append({**s, "y": i * row_h, "x": round(x, 2), "w": round(min(w, label_w + plot_w - x + 2), 2),
                     "indent": 8 + 14 * int(s.get("depth", 0))})
    step = tick_values[1] - tick_values[0] if len(tick_values) > 1 else total
    ticks = [{"x": round(label_w + plot_w * t / total, 2), "label": time_label(t, step)} for t in tick_values]
    return {"width": width, "height": row_h * len(rows) + 24, "rows": rows, "ticks": ticks, "label_w": label_w,
            "row_h": row_h, "axis_ms": total}
