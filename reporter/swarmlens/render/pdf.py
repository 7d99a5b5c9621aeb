"""PDF reports with fpdf2: a user's monthly report, a task report and the weekly/monthly usage report.

Each takes the same dict its page serves (or a close subset), so the PDF always says what the page
says. Charts are drawn with fpdf2's own primitives (rectangles, lines), so they stay vectors and
print sharply. Text uses DejaVu Sans when the system has it (any Unicode the fonts cover), else the
core Helvetica with characters outside Latin-1 replaced.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from typing import Any, Iterable, Sequence

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from swarmlens.render import fmt

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
INK = (29, 36, 48)
MUTED = (93, 103, 120)
ACCENT = (47, 111, 223)
ACCENT2 = (224, 138, 30)
LINE = (221, 226, 234)
BAD = (192, 57, 43)


GOOD = (46, 139, 87)
TONES = {"good": GOOD, "bad": BAD, "neutral": MUTED}


class Change:
    """A change of a measure in a table cell: its text (relative, or percentage points for a rate)
    and the colour of its tone, as the pages show it (swarmlens.render.fmt)."""

    def __init__(self, value: Any, measure: str):
        self.text = fmt.delta(value, measure)
        self.color = TONES[fmt.tone(value, measure)]


def _find_font(name: str) -> str | None:
    for d in _FONT_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    return None


class Document(FPDF):
    def __init__(self, title: str, subtitle: str = ""):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc_title, self.doc_subtitle = title, subtitle
        self.set_margins(16, 16, 16)
        self.set_auto_page_break(True, margin=18)
        regular, bold = _find_font("DejaVuSans.ttf"), _find_font("DejaVuSans-Bold.ttf")
        mono = _find_font("DejaVuSansMono.ttf")
        if regular and bold:
            self.add_font("Body", "", regular)
            self.add_font("Body", "B", bold)
            self.add_font("Mono", "", mono or regular)
            self.unicode = True
        else:
            self.unicode = False
        self.set_title(title)
        self.set_creator("swarmlens")
        self.add_page()

    # Fonts and text ---------------------------------------------------------------------------

    def font(self, size: float = 10, bold: bool = False, mono: bool = False) -> None:
        if self.unicode:
            self.set_font("Mono" if mono else "Body", "" if mono else ("B" if bold else ""), size)
        else:
            self.set_font("Courier" if mono else "Helvetica", "B" if bold and not mono else "", size)

    def t(self, value: Any) -> str:
        text = "" if value is None else str(value)
        if self.unicode:
            return text
        text = text.replace("→", "->").replace("–", "-").replace("…", "...").replace("≥", ">=")
        return text.encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        if self.page_no() == 1:
            self.set_fill_color(*ACCENT)
            self.rect(0, 0, self.w, 3, style="F")
            self.set_y(10)
            self.font(8, bold=True)
            self.set_text_color(*ACCENT)
            self.cell(0, 5, "SWARMLENS", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.font(20, bold=True)
            self.set_text_color(*INK)
            self.multi_cell(0, 9, self.t(self.doc_title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            if self.doc_subtitle:
                self.font(10)
                self.set_text_color(*MUTED)
                self.multi_cell(0, 5, self.t(self.doc_subtitle), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(3)
        else:
            self.set_y(8)
            self.font(8)
            self.set_text_color(*MUTED)
            self.cell(0, 5, self.t(self.doc_title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(4)
        self.set_text_color(*INK)

    def footer(self) -> None:
        self.set_y(-12)
        self.font(8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.t(f"swarmlens · generated {datetime.now():%Y-%m-%d %H:%M} UTC · page {self.page_no()}/{{nb}}"),
                  align="C")

    def h2(self, text: str) -> None:
        if self.get_y() > self.h - 50:
            self.add_page()
        self.ln(3)
        self.font(13, bold=True)
        self.set_text_color(*INK)
        self.cell(0, 8, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*LINE)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(2)

    def para(self, text: str, size: float = 10, color=INK, mono: bool = False) -> None:
        self.font(size, mono=mono)
        self.set_text_color(*color)
        self.multi_cell(0, size * 0.5, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*INK)

    def boxed(self, label: str, text: str) -> None:
        self.font(9, bold=True)
        self.set_text_color(*MUTED)
        self.cell(0, 6, self.t(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_fill_color(246, 247, 250)
        self.font(9, mono=True)
        self.set_text_color(*INK)
        self.multi_cell(0, 4.6, self.t(text or "(empty)")[:6000], border=0, fill=True, new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)
        self.ln(2)

    def figures(self, items: Sequence[tuple[str, str]]) -> None:
        """A row of headline figures in boxes."""
        width = (self.w - self.l_margin - self.r_margin - 3 * (len(items) - 1)) / len(items)
        x0, y0 = self.l_margin, self.get_y()
        for i, (label, value) in enumerate(items):
            x = x0 + i * (width + 3)
            self.set_draw_color(*LINE)
            self.set_fill_color(250, 251, 253)
            self.rect(x, y0, width, 17, style="DF")
            self.set_xy(x + 2.5, y0 + 2)
            self.font(7, bold=True)
            self.set_text_color(*MUTED)
            self.cell(width - 5, 4, self.t(label.upper()))
            self.set_xy(x + 2.5, y0 + 7.5)
            self.font(13, bold=True)
            self.set_text_color(*INK)
            self.cell(width - 5, 7, self.t(value))
        self.set_xy(self.l_margin, y0 + 21)

    def table(self, columns: Sequence[tuple[str, float, str]], rows: Iterable[Sequence[Any]]) -> None:
        """columns: (title, relative width, align 'L'/'R')."""
        total = sum(c[1] for c in columns)
        usable = self.w - self.l_margin - self.r_margin
        widths = [usable * c[1] / total for c in columns]

        def head():
            self.font(8, bold=True)
            self.set_fill_color(240, 243, 248)
            self.set_text_color(*MUTED)
            for (title, _, align), w in zip(columns, widths):
                self.cell(w, 6.5, self.t(title), fill=True, align=align)
            self.ln(6.5)
            self.set_text_color(*INK)

        head()
        self.font(9)
        self.set_draw_color(*LINE)
        any_row = False
        for row in rows:
            any_row = True
            if self.get_y() > self.h - 24:
                self.add_page()
                head()
                self.font(9)
            for (title, _, align), w, v in zip(columns, widths, row):
                # A cell is a value, or a Change (its text coloured by whether it is good news).
                color = v.color if isinstance(v, Change) else INK
                text = self.t(v.text if isinstance(v, Change) else v)
                while text and self.get_string_width(text) > w - 2 and len(text) > 3:
                    text = text[:-2] + ("…" if self.unicode else ".")
                self.set_text_color(*color)
                self.cell(w, 6, text, align=align)
            self.set_text_color(*INK)
            self.ln(6)
            self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        if not any_row:
            self.font(9)
            self.set_text_color(*MUTED)
            self.cell(0, 6, "No rows.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(*INK)
        self.ln(2)

    def bar_chart(self, rows: Sequence[dict[str, Any]], bar_key: str, line_key: str | None = None,
                  height: float = 48, bar_label: str = "", line_label: str = "") -> None:
        """Daily bars (and an optional line on its own scale), like the pages' SVG trend chart."""
        from swarmlens.render.charts import axis, compact

        if not any(float(r.get(bar_key) or 0) or (line_key and float(r.get(line_key) or 0)) for r in rows):
            self.para("No activity in this period.", color=MUTED)
            return
        if self.get_y() + height + 16 > self.h - 18:
            self.add_page()
        left, right = self.l_margin + 14, self.w - self.r_margin - (12 if line_key else 2)
        top = self.get_y() + 2
        bottom = top + height
        n = max(1, len(rows))
        bmax, bticks = axis(max([float(r.get(bar_key) or 0) for r in rows] + [0]), integer=True)
        slot = (right - left) / n
        self.font(7)
        self.set_text_color(*MUTED)
        self.set_draw_color(*LINE)
        for tick in bticks:
            y = bottom - height * tick / bmax
            self.line(left, y, right, y)
            self.text(self.l_margin, y + 1, self.t(compact(tick)))
        self.set_fill_color(*ACCENT)
        for i, r in enumerate(rows):
            h = height * float(r.get(bar_key) or 0) / bmax
            if h > 0:
                self.rect(left + i * slot + slot * 0.15, bottom - h, max(0.4, slot * 0.7), h, style="F")
            label = r.get("day")
            if isinstance(label, (date, datetime)) and (n <= 10 or i % max(1, n // 8) == 0):
                self.text(left + i * slot, bottom + 4, label.strftime("%d %b"))
        if line_key:
            lmax, lticks = axis(max([float(r.get(line_key) or 0) for r in rows] + [0]), integer=True)
            self.set_draw_color(*ACCENT2)
            self.set_line_width(0.5)
            pts = [(left + i * slot + slot / 2, bottom - height * float(r.get(line_key) or 0) / lmax)
                   for i, r in enumerate(rows)]
            for a, b in zip(pts, pts[1:]):
                self.line(a[0], a[1], b[0], b[1])
            self.set_line_width(0.2)
            self.set_text_color(*ACCENT2)
            for tick in lticks[1:]:
                self.text(right + 1.5, bottom - height * tick / lmax + 1, self.t(compact(tick)))
        self.set_y(bottom + 6)
        self.font(8)
        self.set_fill_color(*ACCENT)
        self.rect(self.l_margin, self.get_y() + 1, 3, 3, style="F")
        self.set_text_color(*MUTED)
        self.set_x(self.l_margin + 4)
        self.cell(30, 5, self.t(bar_label))
        if line_key:
            self.set_fill_color(*ACCENT2)
            self.rect(self.get_x(), self.get_y() + 1, 3, 3, style="F")
            self.set_x(self.get_x() + 4)
            self.cell(40, 5, self.t(f"{line_label} (right axis)"))
        self.ln(7)
        self.set_text_color(*INK)
        self.set_draw_color(*LINE)

    def hbars(self, rows: Sequence[tuple[str, float, str]]) -> None:
        """Horizontal bars: (label, value, value text)."""
        top = max([v for _, v, _ in rows] + [0]) or 1.0
        label_w, usable = 45, self.w - self.l_margin - self.r_margin - 45 - 22
        self.font(9)
        for label, value, text in rows:
            if self.get_y() > self.h - 22:
                self.add_page()
            y = self.get_y()
            self.set_text_color(*INK)
            self.cell(label_w, 6, self.t(label)[:28])
            self.set_fill_color(91, 141, 239)
            w = usable * value / top
            if w > 0:
                self.rect(self.l_margin + label_w, y + 1.5, w, 3.5, style="F")
            self.set_xy(self.l_margin + label_w + w + 2, y)
            self.set_text_color(*MUTED)
            self.cell(20, 6, self.t(text))
            self.ln(6)
        self.set_text_color(*INK)

    def output_bytes(self, as_of: str | None = None) -> bytes:
        """The PDF. ``as_of`` (an ISO date: the exclusive end of the period a report covers) stamps
        the document's creation date with the moment its figures became final, when that has
        passed: the same report of a past period is then the same bytes, whoever makes it and when
        (the download and the mailed copy of a month's report are one document)."""
        if as_of:
            final = datetime.fromisoformat(as_of).replace(tzinfo=timezone.utc)
            if final <= datetime.now(timezone.utc):
                self.set_creation_date(final)
        self.alias_nb_pages()
        return bytes(self.output())


def _quota_line(q: dict[str, Any]) -> str:
    if not q.get("quota"):
        return f"Plan {q.get('plan_name') or q.get('plan') or 'none'}: no monthly quota."
    state = {"over": "OVER QUOTA", "warn": "near quota", "ok": "within quota"}.get(q["level"], "")
    return (f"Plan {q.get('plan_name') or q['plan']}: {fmt.num(q['tokens'])} of {fmt.num(q['quota'])} tokens this "
            f"month ({fmt.percent(q['percent'])}), {state}.")


def user_month_pdf(ctx: dict[str, Any]) -> bytes:
    m = ctx["month"]
    f = ctx["figures"]
    doc = Document(f"Monthly usage: {ctx['user_id']}", f"{m['label']} ({m['start']} to {m['end_exclusive']}, UTC)")
    doc.figures([("Tasks", fmt.num(f["tasks"])), ("Tokens", fmt.num(f["tokens"])), ("Cost", fmt.usd(f["cost_usd"])),
                 ("Avg tokens/task", fmt.avg(f["avg_tokens_per_task"])), ("Error rate", fmt.pct(f["error_rate"]))])
    q = ctx["quota"]
    doc.para(_quota_line(q), color=BAD if q.get("level") == "over" else INK)
    doc.h2("Tokens and tasks per day")
    doc.bar_chart(ctx["daily"], "tokens", "tasks", bar_label="tokens", line_label="tasks")
    doc.h2("Agents")
    if ctx["agents"]:
        doc.hbars([(a["agent"], float(a["tokens"]), fmt.num(a["tokens"])) for a in ctx["agents"][:10]])
        doc.ln(2)
    doc.table([("Agent", 3, "L"), ("Runs", 1, "R"), ("Input", 1.4, "R"), ("Output", 1.4, "R"), ("Tokens", 1.4, "R"),
               ("Cost", 1.3, "R")],
              [(a["agent"], fmt.num(a["runs"]), fmt.num(a["input_tokens"]), fmt.num(a["output_tokens"]),
                fmt.num(a["tokens"]), fmt.usd(a["cost_usd"]))
               for a in ctx["agents"]])
    doc.h2("Models")
    doc.table([("Model", 3, "L"), ("Calls", 1, "R"), ("Input", 1.4, "R"), ("Output", 1.4, "R"), ("Cost", 1.3, "R")],
              [(r["model"], fmt.num(r["calls"]), fmt.num(r["input_tokens"]), fmt.num(r["output_tokens"]),
                fmt.usd(r["cost_usd"])) for r in ctx["models"]])
    doc.para("Tokens and tasks count at the task level; agent and model tables at their own level. Costs use the "
             "model prices in force when this report was made.", size=8, color=MUTED)
    return doc.output_bytes(as_of=m["end_exclusive"])


def task_pdf(ctx: dict[str, Any]) -> bytes:
    t = ctx["task"]
    doc = Document(f"Task {t['task_id']}", f"{fmt.dt(t['start_time'])} UTC · user {t['user_id']} · status {t['status']}"
                   + (f" ({t['error_type']})" if t["error_type"] else ""))
    doc.figures([("Tokens", fmt.num(t["total_tokens"])), ("Input", fmt.num(t["input_tokens"])),
                 ("Output", fmt.num(t["output_tokens"])), ("Cost", fmt.usd(ctx["cost_usd"])),
                 ("Duration", fmt.duration(t["duration_ms"]))])
    doc.boxed("INPUT", fmt.pretty(t["input"])["text"])
    doc.boxed("OUTPUT", fmt.pretty(t["output"])["text"])
    doc.h2("Handoff path")
    doc.para(" → ".join(ctx["handoff_path"]) or "No agent runs recorded.")
    doc.h2("Waterfall")
    _waterfall(doc, ctx["waterfall"], ctx["waterfall_total_ms"])
    doc.h2("Tokens and cost per agent")
    doc.table([("Agent", 3, "L"), ("Model", 2, "L"), ("Input", 1.3, "R"), ("Output", 1.3, "R"), ("Tokens", 1.3, "R"),
               ("Cost", 1.3, "R")],
              [(a["agent"], ", ".join(a["models"]), fmt.num(a["input_tokens"]), fmt.num(a["output_tokens"]),
                fmt.num(a["tokens"]), fmt.usd(a["cost_usd"])) for a in ctx["agents"]])
    s = ctx["feedback_summary"]
    if not (s["up"] or s["down"]):
        # No votes: nothing to report, and a heading near the foot of a page would start a page of its own.
        return doc.output_bytes()
    doc.h2("Feedback")
    doc.para(f"Thumbs up: {s['up']}   Thumbs down: {s['down']}")
    for f in ctx["feedback"][:20]:
        if f["comment"]:
            doc.para(f"{'+1' if f['vote'] > 0 else '-1'} {f['user_id']}: {f['comment']}", size=9, color=MUTED)
    return doc.output_bytes()


def _waterfall(doc: Document, rows: Sequence[dict[str, Any]], total_ms: float) -> None:
    colors = {"task": INK, "agent": ACCENT, "chat": ACCENT2, "tool": (46, 139, 87), "handoff": (142, 68, 173)}
    label_w = 58
    left = doc.l_margin + label_w
    right = doc.w - doc.r_margin - 20
    total = max(float(total_ms), 0.001)
    doc.font(8)
    for r in rows:
        if doc.get_y() > doc.h - 22:
            doc.add_page()
        y = doc.get_y()
        doc.set_x(doc.l_margin + 3 * int(r.get("depth", 0)))
        doc.set_text_color(*(BAD if r["error"] else INK))
        doc.cell(label_w - 3 * int(r.get("depth", 0)), 5, doc.t(r["label"])[:34])
        x = left + (right - left) * float(r["offset_ms"]) / total
        w = max(0.6, (right - left) * float(r["duration_ms"]) / total)
        doc.set_fill_color(*(BAD if r["error"] else colors.get(r["kind"], MUTED)))
        doc.rect(x, y + 1, min(w, right - x + 0.5), 3, style="F")
        doc.set_xy(right + 1, y)
        doc.set_text_color(*MUTED)
        doc.cell(19, 5, doc.t(fmt.duration(r["duration_ms"])), align="R")
        doc.ln(5)
    doc.set_text_color(*INK)
    doc.ln(2)


def usage_report_pdf(ctx: dict[str, Any]) -> bytes:
    p, prev = ctx["period"], ctx["previous_period"]
    doc = Document(f"{ctx['kind'].capitalize()} usage report: {p['key']}",
                   f"{p['label']} ({p['start']} to {p['end_exclusive']}, UTC), compared with {prev['label']}")
    by = {t["key"]: t for t in ctx["totals"]}
    doc.figures([("Tasks", fmt.num(by["tasks"]["current"])), ("Tokens", fmt.num(by["tokens"]["current"])),
                 ("Cost", fmt.usd(by["cost_usd"]["current"])),
                 ("Avg tokens/task", fmt.avg(by["avg_tokens_per_task"]["current"])),
                 ("Active users", fmt.num(by["active_users"]["current"]))])
    doc.h2("Totals")

    def val(t, v):
        if t["key"] == "cost_usd":
            return fmt.usd(v)
        if t["key"] == "error_rate":
            return fmt.pct(v)
        if t["key"] == "avg_tokens_per_task":
            return fmt.avg(v)
        return fmt.num(v)

    doc.table([("Figure", 3, "L"), ("This period", 1.5, "R"), ("Previous", 1.5, "R"), ("Change", 1.2, "R")],
              [(t["figure"], val(t, t["current"]), val(t, t["previous"]), Change(t["change"], t["key"]))
               for t in ctx["totals"]])
    doc.h2("Tokens and tasks per day")
    doc.bar_chart(ctx["daily"], "tokens", "tasks", bar_label="tokens", line_label="tasks")
    doc.h2("By user")
    doc.table([("User", 2.5, "L"), ("Tasks", 1, "R"), ("Tokens", 1.4, "R"), ("Cost", 1.3, "R"), ("Previous", 1.4, "R"),
               ("Change", 1.1, "R")],
              [(u["user_id"], fmt.num(u["tasks"]), fmt.num(u["tokens"]), fmt.usd(u["cost_usd"]),
                fmt.num(u["previous_tokens"]), Change(u["change"], "tokens")) for u in ctx["users"]])
    doc.h2("By agent")
    doc.table([("Agent", 2.5, "L"), ("Runs", 1, "R"), ("Tokens", 1.4, "R"), ("Cost", 1.3, "R"), ("Previous", 1.4, "R"),
               ("Change", 1.1, "R")],
              [(a["agent"], fmt.num(a["runs"]), fmt.num(a["tokens"]), fmt.usd(a["cost_usd"]),
                fmt.num(a["previous_tokens"]), Change(a["change"], "tokens")) for a in ctx["agents"]])
    doc.h2("By model")
    doc.table([("Model", 2.2, "L"), ("Calls", 0.9, "R"), ("Input", 1.2, "R"), ("Output", 1.2, "R"), ("Cost", 2.0, "R"),
               ("Change", 1.0, "R")],
              [(m["model"], fmt.num(m["calls"]), fmt.num(m["input_tokens"]), fmt.num(m["output_tokens"]),
                fmt.usd(m["cost_usd"]) + ("" if m["priced"] else " (no price)"),
                Change(m["change"], "tokens"))
               for m in ctx["models"]])
    return doc.output_bytes(as_of=p["end_exclusive"])
