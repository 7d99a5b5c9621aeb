"""A task's page: input and output, the waterfall of its spans, the handoff path, tokens and cost
per agent, and its feedback."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from swarmlens.reports.common import parallel, q, q1

_KIND_ORDER = {"invoke_workflow": 0, "invoke_agent": 1, "chat": 2, "execute_tool": 2}


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000.0


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def waterfall(client, config, task: dict[str, Any], runs: list[dict[str, Any]],
              spans: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rows of the waterfall, from the raw spans of the trace (or, when those expired, from the
    derived agent runs and chat calls, without tools). Returns (rows, source). ``spans``: the rows
    of task_spans when already queried."""
    t0 = _aware(task["start_time"])
    if spans is None:
        spans = q(client, config, "task_spans", task=task["task_id"], start=task["start_time"], end=task["end_time"])
    rows: list[dict[str, Any]] = []
    if spans:
        depth = {}
        for s in spans:  # parents start before their children, so one pass in start order suffices
            depth[s["span_id"]] = depth.get(s["parent_span_id"], -1) + 1 if s["parent_span_id"] else 0
        for s in spans:
            op = s["operation"] or s["name"].split(" ")[0]
            if op == "invoke_workflow":
                label, kind = "task", "task"
            elif op == "invoke_agent":
                label, kind = s["agent"] or s["name"][13:], "agent"
            elif op == "chat":
                label, kind = f"chat {s['model']}".strip(), "chat"
            elif op == "execute_tool":
                label, kind = s["tool"] or s["name"][13:], "handoff" if s["handoff_to"] else "tool"
            else:
                label, kind = s["name"], "other"
            rows.append({
                "span_id": s["span_id"], "kind": kind, "label": label, "agent": s["agent"],
                "depth": depth.get(s["span_id"], 0),
                "offset_ms": round(max(0.0, _ms(t0, _aware(s["start_time"]))), 3),
                "duration_ms": round(s["duration_ns"] / 1e6, 3),
                "input_tokens": s["input_tokens"], "output_tokens": s["output_tokens"],
                "error": s["error_type"] or ("error" if "error" in s["status_code"].lower() else ""),
                "handoff_to": s["handoff_to"],
            })
        return rows, "spans"
    rows.append({"span_id": task["span_id"], "kind": "task", "label": "task", "agent": task["start_agent"], "depth": 0,
                 "offset_ms": 0.0, "duration_ms": float(task["duration_ms"]), "input_tokens": task["input_tokens"],
                 "output_tokens": task["output_tokens"], "error": task["error_type"], "handoff_to": ""})
    chats = q(client, config, "task_chat_calls", task=task["task_id"])
    for r in runs:
        rows.append({"span_id": r["span_id"], "kind": "agent", "label": r["agent"], "agent": r["agent"], "depth": 1,
                     "offset_ms": max(0.0, _ms(t0, _aware(r["start_time"]))), "duration_ms": float(r["duration_ms"]),
                     "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
                     "error": r["error_type"], "handoff_to": ""})
        for c in chats:
            if c["parent_span_id"] == r["span_id"]:
                rows.append({"span_id": c["span_id"], "kind": "chat", "label": f"chat {c['model']}", "agent": c["agent"],
                             "depth": 2, "offset_ms": max(0.0, _ms(t0, _aware(c["start_time"]))),
                             "duration_ms": float(c["duration_ms"]), "input_tokens": c["input_tokens"],
                             "output_tokens": c["output_tokens"], "error": c["error_type"], "handoff_to": ""})
    return rows, "derived tables"


def per_agent(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        a = out.setdefault(r["agent"], {"agent": r["agent"], "models": [], "stretches": 0, "input_tokens": 0,
                                        "output_tokens": 0, "tokens": 0, "cost_usd": 0.0, "duration_ms": 0,
                                        "unpriced": False})
        if r["model"] not in a["models"]:
            a["models"].append(r["model"])
        a["stretches"] += 1
        a["input_tokens"] += r["input_tokens"]
        a["output_tokens"] += r["output_tokens"]
        a["tokens"] += r["input_tokens"] + r["output_tokens"]
        a["cost_usd"] += float(r["cost_usd"] or 0)
        a["duration_ms"] += r["duration_ms"]
        a["unpriced"] = a["unpriced"] or not r["priced"]
    return sorted(out.values(), key=lambda a: -a["tokens"])


def find(client, config, task_id: str) -> dict[str, Any]:
    return q1(client, config, "task", task=task_id)


def build(client, config, task: dict[str, Any], viewer_feedback_user: str = "") -> dict[str, Any]:
    # The task's agent runs, spans and feedback at once (the chat calls only when the spans expired).
    res = parallel(
        runs=lambda: q(client, config, "task_agent_runs", task=task["task_id"]),
        spans=lambda: q(client, config, "task_spans", task=task["task_id"], start=task["start_time"],
                        end=task["end_time"]),
        feedback=lambda: q(client, config, "task_feedback", task=task["task_id"]),
    )
    runs, feedback = res["runs"], res["feedback"]
    rows, source = waterfall(client, config, task, runs, res["spans"])
    path = [r["agent"] for r in runs]
    mine = next((f for f in feedback if f["user_id"] == viewer_feedback_user), None)
    total_ms = max([r["offset_ms"] + r["duration_ms"] for r in rows] + [float(task["duration_ms"]), 1.0])
    return {
        "task": task,
        "handoff_path": path,
        "agents": per_agent(runs),
        "agent_runs": runs,
        "cost_usd": sum(float(r["cost_usd"] or 0) for r in runs),
        "waterfall": rows,
        "waterfall_source": source,
        "waterfall_total_ms": total_ms,
        "feedback": feedback,
        "feedback_summary": {"up": sum(1 for f in feedback if f["vote"] > 0),
                             "down": sum(1 for f in feedback if f["vote"] < 0)},
        "my_vote": mine,
    }
