"""Benchmark data: Swarm tasks at scale, in the telemetry contract's shape, loaded the way a
collector loads them, plus the same tasks as rows of the original PostgreSQL design.

    .venv/bin/python -m bench.generate --preset small --url http://127.0.0.1:8123 --migrate \\
        --pg-copy /tmp/task_history.copy

What it makes (deterministic for a given --seed and --end):

- 10k users whose activity follows Zipf's law (the busiest user has about a tenth of all tasks);
- 12 agents, each with its own model mix, tools and token distribution (log-normal per agent,
  scaled per model), in handoff chains of 1 to 5 stretches;
- 90 days of history ending at --end (default: today, 00:00 UTC), growing over the period, quieter
  at weekends and at night;
- about 2% failed tasks (the error on the failing stretch's last chat, as the instrumentation
  records it), about 4% of tasks with a feedback vote, and the users/plans/model_prices rows.

Spans go to ``otel.otel_traces`` as RowBinary over the ClickHouse HTTP interface, in batches of
about 50k spans (the path rotel and the contrib exporter take), so the materialized views derive
every other table. The spans carry exactly the attributes ``tests/support/swarmlens_testing/spans.py`` (``task_spans``)
gives them; they are encoded here directly because building dicts for 10M spans takes too long.

With --pg-copy, the same tasks are also written as PostgreSQL COPY text for the original design's
``task_history`` table (``PG_DDL``): one row per task; per-agent usage, tool calls, status and the
output are in ``result`` JSONB, where the app kept what Swarm returned.
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import random
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bench.benchlib import progress  # the benches share one progress bar

PRESETS = {
    "tiny": 2_000,
    "small": 50_000,
    "full": 1_000_000,
    "10m": 10_000_000,  # about 92M spans; outside CI (docs/benchmarks.md, "Growth")
}
USERS = 10_000
DAYS = 90
ZIPF_S = 1.0
ERROR_RATE = 0.02
FEEDBACK_RATE = 0.04

# name, entry weight, {model: share}, input-token median, output-token median, tools
AGENTS = [
    ("Triage", 0.78, {"gpt-4o-mini": 0.9, "gpt-4.1-nano": 0.1}, 420, 45, ["lookup_customer"]),
    ("Billing", 0.0, {"gpt-4o": 0.8, "gpt-4.1-mini": 0.2}, 1500, 210, ["lookup_invoice", "issue_refund"]),
    ("Tech Support", 0.08, {"gpt-4o": 0.7, "o3-mini": 0.3}, 2300, 380, ["search_docs", "run_diagnostics"]),
    ("Account", 0.05, {"gpt-4o-mini": 1.0}, 900, 120, ["reset_password", "update_profile"]),
    ("Sales", 0.09, {"gpt-4o-mini": 0.6, "gpt-4o": 0.4}, 1100, 260, ["get_pricing", "create_quote"]),
    ("Refunds", 0.0, {"gpt-4o": 1.0}, 1300, 170, ["lookup_order", "issue_refund"]),
    ("Shipping", 0.0, {"gpt-4o-mini": 1.0}, 800, 140, ["track_package", "lookup_order"]),
    ("Returns", 0.0, {"gpt-4o-mini": 0.8, "gpt-4.1-mini": 0.2}, 950, 150, ["create_return_label"]),
    ("Escalation", 0.0, {"o3-mini": 0.7, "gpt-4o": 0.3}, 3200, 650, ["create_ticket", "notify_oncall"]),
    ("Knowledge Base", 0.0, {"gpt-4.1-mini": 1.0}, 2600, 420, ["search_docs"]),
    ("Scheduler", 0.0, {"gpt-4.1-nano": 1.0}, 600, 90, ["find_slot", "book_slot"]),
    ("Translator", 0.0, {"gpt-4.1-mini": 0.5, "gpt-4o-mini": 0.5}, 700, 640, []),
]
AGENT_NAMES = [a[0] for a in AGENTS]
# Per-model scale of (input, output) tokens: reasoning models write more, nano models read less.
MODEL_SCALE = {"gpt-4o-mini": (1.0, 1.0), "gpt-4o": (1.1, 1.15), "gpt-4.1-mini": (1.0, 1.05),
               "gpt-4.1-nano": (0.7, 0.8), "o3-mini": (1.2, 2.4)}
MODEL_PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-mini": (0.40, 1.60),
                "gpt-4.1-nano": (0.10, 0.40), "o3-mini": (1.10, 4.40)}
CHAIN_LENGTHS = [1, 2, 3, 4, 5]
CHAIN_WEIGHTS = [0.33, 0.31, 0.21, 0.10, 0.05]
ERRORS = [("openai.RateLimitError", 0.45), ("openai.APITimeoutError", 0.3),
          ("openai.BadRequestError", 0.15), ("openai.InternalServerError", 0.1)]

# Messages: a topic per entry agent, with slots, so that keyword search has common and rare words.
TOPICS = {
    "Triage": ["where is my order {order}", "i was charged twice for order {order}, please refund",
               "my {product} stopped working after the update", "can i change the delivery address for {order}",
               "i want to cancel my subscription", "how do i return the {product} i bought last week",
               "the invoice {invoice} shows the wrong amount", "please book a call with support about {product}"],
    "Tech Support": ["{product} shows error {code} when syncing", "the {product} app crashes on startup",
                     "bluetooth pairing fails on my {product}", "firmware update stuck at 80 percent on {product}"],
    "Account": ["i cannot log in, password reset email never arrives", "change the email on my account",
                "two factor codes are rejected", "delete my account and my data"],
    "Sales": ["what does the team plan cost for {seats} seats", "do you offer a discount for nonprofits",
              "quote for {seats} licenses of {product}", "compare the pro and enterprise plans"],
}
PRODUCTS = ["thermostat", "doorbell", "router", "smart plug", "camera", "speaker", "watch", "headphones",
            "scale", "lamp"]
FILLERS = ["", "", " thanks", " asap please", " this is urgent", " it happened yesterday",
           " second time this month", " my chargeback was rejected", " in german please", " on ios"]
OUTPUTS = ["I have {verb} that for you: reference {ref}.", "Done. {verb} and confirmed by email ({ref}).",
           "Sorry about that. I {verb} it; you will hear from us within 24 hours ({ref}).",
           "Here is what I found: {verb}. Anything else? ({ref})"]
VERBS = ["refunded", "rescheduled", "escalated", "fixed", "updated", "cancelled", "shipped", "quoted"]

PG_DDL = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE task_history (
    id UUID PRIMARY KEY,
    user_id INTEGER NOT NULL,
    input_message TEXT,
    agents TEXT[],
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    result JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
"""
# Created after COPY (faster, and what a restore does): history by user, time ranges, keyword search.
PG_INDEXES = """
CREATE INDEX task_history_user_created ON task_history (user_id, created_at DESC);
CREATE INDEX task_history_created ON task_history (created_at);
CREATE INDEX task_history_input_trgm ON task_history USING gin (input_message gin_trgm_ops);
"""
PG_COLUMNS = ("id", "user_id", "input_message", "agents", "prompt_tokens", "completion_tokens", "total_tokens",
              "result", "created_at")

SPAN_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
    "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
    "Links.TraceState", "Links.Attributes",
)
SERVICE = "support-swarm"


def user_id_of(n: int) -> str:
    return f"user-{n:05d}"


# ---------------------------------------------------------------------------------------------
# RowBinary encoding


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT = [_varint(i) for i in range(1 << 14)]
_cache: dict[str, bytes] = {}


def _s(value: str) -> bytes:
    b = value.encode()
    n = len(b)
    return (_VARINT[n] if n < 16384 else _varint(n)) + b


def _c(value: str) -> bytes:
    """A string that repeats (names, models, keys): encoded once."""
    b = _cache.get(value)
    if b is None:
        b = _cache[value] = _s(value)
    return b


def _map(items: list[tuple[str, str]]) -> bytes:
    return _VARINT[len(items)] + b"".join(_c(k) + _s(v) for k, v in items)


_Q = struct.Struct("<q").pack
_UQ = struct.Struct("<Q").pack
_RESOURCE = _map([("service.name", SERVICE), ("telemetry.sdk.language", "python"),
                  ("telemetry.sdk.name", "opentelemetry")])
_SCOPE = _s("opentelemetry.instrumentation.openai_swarm") + _s("0.1.0")
_EMPTY = b"\x00"
_NO_LINKS = b"\x00\x00\x00\x00"
_NO_EVENTS = b"\x00\x00\x00"


def _span(ts: int, trace: bytes, span: bytes, parent: bytes, name: str, kind: str, attrs: list[tuple[str, str]],
          duration: int, error: str = "") -> bytes:
    if error:
        message = f"{error}: the model call failed"
        status = _c("Error") + _s(message)
        events = (b"\x01" + _Q(ts + duration) + b"\x01" + _c("exception")
                  + b"\x01" + _map([("exception.type", error), ("exception.message", message)]))
    else:
        status = _c("Unset") + _EMPTY
        events = _NO_EVENTS
    return b"".join((_Q(ts), trace, span, parent, _EMPTY, _c(name), _c(kind), _c(SERVICE), _RESOURCE, _SCOPE,
                     _map(attrs), _UQ(duration), status, events, _NO_LINKS))


# ---------------------------------------------------------------------------------------------
# Tasks


@dataclass
class Stats:
    tasks: int = 0
    spans: int = 0
    errors: int = 0
    feedback: int = 0
    batches: int = 0
    seconds: float = 0.0
    insert_seconds: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    users_by_tasks: list[tuple[str, int]] = field(default_factory=list)  # busiest first
    sample_task_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


class Generator:
    def __init__(self, n_tasks: int, seed: int = 42, end: datetime | None = None, users: int = USERS):
        self.n_tasks = n_tasks
        self.seed = seed
        self.users = users
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        self.end = (end or today).astimezone(timezone.utc)
        self.start = self.end - timedelta(days=DAYS)
        self.rng = random.Random(seed)
        rng = self.rng
        # Zipf: weight of rank r is 1/r^s; ranks map to user numbers through a fixed shuffle.
        numbers = list(range(1, users + 1))
        rng.shuffle(numbers)
        self.user_by_rank = numbers
        weights = [1.0 / (r ** ZIPF_S) for r in range(1, users + 1)]
        total = sum(weights)
        acc, self.user_cum = 0.0, []
        for w in weights:
            acc += w / total
            self.user_cum.append(acc)
        # Handoff preferences: each agent hands off to a few others more often than to the rest.
        self.next_weights = {}
        for i, name in enumerate(AGENT_NAMES):
            self.next_weights[name] = [0.0 if j == i else (8.0 if rng.random() < 0.25 else 1.0)
                                       for j in range(len(AGENTS))]
            if name == "Triage":
                self.next_weights[name] = [0.0, 9, 6, 4, 5, 4, 4, 3, 0.5, 2, 1, 1]

    def _times(self) -> list[int]:
        """Task start times (ns), sorted: growth over the period, weekly and daily rhythm."""
        rng = random.Random(self.seed + 1)
        day_w = []
        for d in range(DAYS):
            day = self.start + timedelta(days=d)
            w = (1.0 + 0.5 * d / DAYS) * (0.6 if day.weekday() >= 5 else 1.0)
            day_w.append(w)
        total = sum(day_w)
        counts = [int(self.n_tasks * w / total) for w in day_w]
        for i in range(self.n_tasks - sum(counts)):
            counts[i % DAYS] += 1
        base = int(self.start.timestamp()) * 1_000_000_000
        out = []
        for d, c in enumerate(counts):
            day0 = base + d * 86_400_000_000_000
            for _ in range(c):
                # Office hours in Europe and America, a quiet floor at night.
                u = rng.random()
                hour = rng.gauss(10, 2.5) if u < 0.45 else rng.gauss(16, 3) if u < 0.9 else rng.uniform(0, 24)
                sec = min(max(hour, 0.0), 23.999) * 3600
                out.append(day0 + int(sec * 1e9) + rng.randrange(1_000_000))
        out.sort()
        return out

    def _user(self) -> int:
        u = self.rng.random()
        lo, hi = 0, len(self.user_cum) - 1
        cum = self.user_cum
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        return self.user_by_rank[lo]

    def _input(self, entry: str) -> str:
        rng = self.rng
        tpl = rng.choice(TOPICS.get(entry, TOPICS["Triage"]))
        text = tpl.format(order=f"#{rng.randrange(10**6, 10**7)}", product=rng.choice(PRODUCTS),
                          invoice=f"INV-{rng.randrange(10**5, 10**6)}", code=f"E{rng.randrange(100, 999)}",
                          seats=rng.choice([5, 10, 25, 50, 200]))
        return text[0].upper() + text[1:] + rng.choice(FILLERS)

    def tasks(self):
        """Yields (rowbinary bytes of the task's spans, span count, COPY line, feedback row or None)."""
        rng = self.rng
        hexbits = rng.getrandbits
        times = self._times()
        entry_names = [a[0] for a in AGENTS if a[1] > 0]
        entry_weights = [a[1] for a in AGENTS if a[1] > 0]
        by_name = {a[0]: a for a in AGENTS}
        chats_k = (1, 2, 3)
        chats_w = (0.55, 0.33, 0.12)
        err_names = [e[0] for e in ERRORS]
        err_w = [e[1] for e in ERRORS]
        session_of: dict[int, tuple[int, str]] = {}
        for t0 in times:
            user_n = self._user()
            user = user_id_of(user_n)
            day = t0 // 86_400_000_000_000
            last = session_of.get(user_n)
            if last is None or last[0] != day:
                last = session_of[user_n] = (day, f"{hexbits(64):016x}")
            session = last[1]
            trace_hex = f"{hexbits(128):032x}"
            trace = _s(trace_hex)
            root_hex = f"{hexbits(64):016x}"
            root = _s(root_hex)
            # The chain of stretches.
            entry = rng.choices(entry_names, entry_weights)[0]
            length = rng.choices(CHAIN_LENGTHS, CHAIN_WEIGHTS)[0]
            chain = [entry]
            while len(chain) < length:
                chain.append(rng.choices(AGENT_NAMES, self.next_weights[chain[-1]])[0])
            fail_at = rng.randrange(length) if rng.random() < ERROR_RATE else -1
            error = rng.choices(err_names, err_w)[0] if fail_at >= 0 else ""
            common = [("gen_ai.provider.name", "openai"), ("enduser.id", user), ("session.id", session)]
            spans: list[bytes] = []
            clock = t0 + 1_000_000
            task_in = task_out = turns = 0
            runs = []
            tools_called = []
            ran = []
            for si, agent in enumerate(chain):
                _, _, models, in_med, out_med, tools = by_name[agent]
                model = rng.choices(list(models), list(models.values()))[0] if len(models) > 1 else next(iter(models))
                sin, sout = MODEL_SCALE[model]
                agent_hex = f"{hexbits(64):016x}"
                agent_id = _s(agent_hex)
                agent_start = clock
                nxt = chain[si + 1] if si + 1 < length and si != fail_at else None
                handoff_tool = f"transfer_to_{nxt.lower().replace(' ', '_')}" if nxt else None
                n_chats = rng.choices(chats_k, chats_w)[0]
                my_tools = rng.sample(tools, min(len(tools), rng.choices((0, 1, 2), (0.45, 0.4, 0.15))[0]))
                inner = []
                a_in = a_out = 0
                failed_here = si == fail_at
                for ci in range(n_chats):
                    tin = int(in_med * sin * math.exp(rng.gauss(0, 0.45)) * (1 + 0.35 * ci))
                    tout = max(1, int(out_med * sout * math.exp(rng.gauss(0, 0.6))))
                    a_in += tin
                    a_out += tout
                    dur = int((0.25 + tout * 0.018 + tin * 0.0001) * 1e9 * math.exp(rng.gauss(0, 0.3)))
                    err_here = error if failed_here and ci == n_chats - 1 else ""
                    last_chat = ci == n_chats - 1
                    attrs = common + [("gen_ai.operation.name", "chat"), ("gen_ai.request.model", model),
                                      ("gen_ai.response.model", model + "-2024-07-18"), ("gen_ai.agent.name", agent),
                                      ("gen_ai.response.id", f"chatcmpl-{hexbits(48):012x}")]
                    if not err_here:
                        attrs.append(("gen_ai.response.finish_reasons",
                                      '["tool_calls"]' if (my_tools or handoff_tool) and last_chat else '["stop"]'))
                    attrs += [("gen_ai.usage.input_tokens", str(tin)), ("gen_ai.usage.output_tokens", str(tout))]
                    if err_here:
                        attrs.append(("error.type", err_here))
                    inner.append(_span(clock, trace, _s(f"{hexbits(64):016x}"), agent_id, f"chat {model}", "Client",
                                       attrs, dur, err_here))
                    clock += dur + 2_000_000
                if not failed_here:
                    for tool in my_tools + ([handoff_tool] if handoff_tool else []):
                        dur = int(rng.uniform(0.02, 0.6) * 1e9) if tool != handoff_tool else 150_000
                        attrs = common + [("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", tool),
                                          ("gen_ai.tool.call.id", f"call_{hexbits(48):012x}"),
                                          ("gen_ai.tool.type", "function"), ("gen_ai.agent.name", agent)]
                        if tool == handoff_tool:
                            attrs.append(("swarm.handoff.to", nxt))
                        else:
                            tools_called.append(tool)
                        inner.append(_span(clock, trace, _s(f"{hexbits(64):016x}"), agent_id, f"execute_tool {tool}",
                                           "Internal", attrs, dur))
                        clock += dur + 1_000_000
                prev = chain[si - 1] if si else None
                attrs = common + [("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", agent),
                                  ("gen_ai.request.model", model), ("gen_ai.usage.input_tokens", str(a_in)),
                                  ("gen_ai.usage.output_tokens", str(a_out)), ("swarm.agent.turns", str(n_chats))]
                if prev is not None and prev != agent:
                    attrs.append(("swarm.handoff.from", prev))
                if failed_here:
                    attrs.append(("error.type", error))
                a_dur = clock - agent_start
                spans.append(_span(agent_start, trace, agent_id, root, f"invoke_agent {agent}", "Internal", attrs,
                                   a_dur, error if failed_here else ""))
                spans.extend(inner)
                runs.append({"agent": agent, "model": model, "input_tokens": a_in, "output_tokens": a_out,
                             "turns": n_chats, "handoff_from": prev or "", "duration_ms": a_dur // 1_000_000,
                             "status": "error" if failed_here else "ok"})
                task_in += a_in
                task_out += a_out
                turns += n_chats
                ran.append(agent)
                clock += 1_000_000
                if failed_here:
                    break
            agents: list[str] = []
            for a in ran:
                if a not in agents:
                    agents.append(a)
            handoffs = sum(1 for a, b in zip(ran, ran[1:]) if a != b)
            text_in = self._input(entry)
            text_out = "" if error else rng.choice(OUTPUTS).format(verb=rng.choice(VERBS),
                                                                   ref=f"T-{hexbits(24):06x}")
            attrs = common + [("gen_ai.operation.name", "invoke_workflow"), ("gen_ai.workflow.name", "swarm"),
                              ("gen_ai.agent.name", chain[0]), ("swarm.task.input", text_in)]
            if text_out:
                attrs.append(("swarm.task.output", text_out))
            attrs += [("swarm.task.agents", json.dumps(agents, separators=(",", ":"))),
                      ("swarm.task.final_agent", ran[-1]), ("swarm.task.handoffs", str(handoffs)),
                      ("swarm.task.turns", str(turns)), ("swarm.task.usage.input_tokens", str(task_in)),
                      ("swarm.task.usage.output_tokens", str(task_out))]
            if error:
                attrs.append(("error.type", error))
            root_dur = clock - t0
            spans.insert(0, _span(t0, trace, root, _EMPTY, "invoke_workflow swarm", "Internal", attrs, root_dur, error))

            created = datetime.fromtimestamp(t0 / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            uuid = f"{trace_hex[:8]}-{trace_hex[8:12]}-{trace_hex[12:16]}-{trace_hex[16:20]}-{trace_hex[20:]}"
            result = {"output": text_out, "status": "error" if error else "ok", "error_type": error,
                      "final_agent": ran[-1], "handoffs": handoffs, "turns": turns,
                      "duration_ms": root_dur // 1_000_000, "agent_runs": runs, "tool_calls": tools_called}
            pg_agents = "{" + ",".join('"' + a + '"' for a in agents) + "}"
            line = "\t".join((uuid, str(user_n), _copy_text(text_in), pg_agents, str(task_in), str(task_out),
                              str(task_in + task_out), _copy_text(json.dumps(result, separators=(",", ":"))),
                              created)) + "\n"
            fb = None
            if rng.random() < FEEDBACK_RATE:
                vote = -1 if rng.random() < (0.7 if error else 0.15) else 1
                fb = (trace_hex, user, vote, "" if rng.random() < 0.7 else rng.choice(
                    ["great", "slow answer", "wrong agent", "solved it", "did not help"]),
                    datetime.fromtimestamp((t0 + root_dur) / 1e9 + rng.uniform(5, 3600), timezone.utc),
                    # the task's start and agents, as the reporter stores them with a vote
                    datetime.fromtimestamp(t0 // 1_000_000 / 1e3, timezone.utc), agents)
            yield b"".join(spans), len(spans), line, fb, trace_hex, user, bool(error)


def _copy_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# ---------------------------------------------------------------------------------------------
# Loading


def _config_rows(gen: Generator):
    rng = random.Random(gen.seed + 2)
    plans = [("free", "Free", 200_000, 80), ("pro", "Pro", 5_000_000, 80), ("enterprise", "Enterprise", 0, 90)]
    users = []
    for n in range(1, gen.users + 1):
        plan = rng.choices(["free", "pro", "enterprise"], [0.6, 0.35, 0.05])[0]
        users.append((user_id_of(n), f"User {n}", f"user{n}@example.com", plan))
    prices = [(m, p[0], p[1]) for m, p in MODEL_PRICES.items()]
    return plans, users, prices


def load(client, gen: Generator, *, otel_db: str = "otel", db: str = "swarmlens", batch_spans: int = 50_000,
         pg_copy_path: str | None = None, show_progress: bool = True) -> Stats:
    """Generates every task and inserts the spans as RowBinary over HTTP (a background thread posts a
    batch while the next one is built), then the feedback and configuration rows."""
    from decimal import Decimal

    stats = Stats(start=gen.start, end=gen.end)
    insert_sql = f"INSERT INTO `{otel_db}`.otel_traces ({', '.join('`' + c + '`' for c in SPAN_COLUMNS)}) FORMAT RowBinary"
    pending: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def poster():
        while True:
            body = pending.get()
            if body is None:
                return
            t = time.perf_counter()
            try:
                if not failure:
                    client.raw_insert(f"`{otel_db}`.otel_traces", insert_block=body, fmt="RowBinary",
                                      column_names=list(SPAN_COLUMNS))
            except BaseException as exc:  # surfaced by the main thread
                failure.append(exc)
            stats.insert_seconds += time.perf_counter() - t

    worker = threading.Thread(target=poster, daemon=True)
    worker.start()
    pg_file = open(pg_copy_path, "w", encoding="utf-8") if pg_copy_path else None
    started = time.perf_counter()
    buf: list[bytes] = []
    in_buf = 0
    feedback = []
    per_user: dict[str, int] = {}
    step = max(1, gen.n_tasks // 200)
    try:
        for i, (body, n, line, fb, task_id, user, failed) in enumerate(gen.tasks(), 1):
            buf.append(body)
            in_buf += n
            stats.spans += n
            stats.errors += failed
            per_user[user] = per_user.get(user, 0) + 1
            if pg_file:
                pg_file.write(line)
            if fb:
                feedback.append(fb)
            if i % max(1, gen.n_tasks // 20) == 0:
                stats.sample_task_ids.append(task_id)
            if in_buf >= batch_spans:
                pending.put(b"".join(buf))
                stats.batches += 1
                buf, in_buf = [], 0
                if failure:
                    raise failure[0]
            if show_progress and (i % step == 0 or i == gen.n_tasks):
                progress(i, gen.n_tasks, "generating + inserting")
            stats.tasks = i
        if buf:
            pending.put(b"".join(buf))
            stats.batches += 1
    finally:
        pending.put(None)
        worker.join()
        if pg_file:
            pg_file.close()
    if failure:
        raise failure[0]
    cols = ["task_id", "user_id", "vote", "comment", "created_at", "task_start_time", "task_agents"]
    for k in range(0, len(feedback), 50_000):
        client.insert("feedback", [list(r) for r in feedback[k:k + 50_000]], column_names=cols, database=db)
    stats.feedback = len(feedback)
    plans, users, prices = _config_rows(gen)
    client.insert("plans", [list(p) for p in plans], column_names=["plan", "display_name", "monthly_token_quota",
                                                                   "warn_at_percent"], database=db)
    client.insert("users", [list(u) for u in users], column_names=["user_id", "display_name", "email", "plan"],
                  database=db)
    client.insert("model_prices", [[m, Decimal(str(a)), Decimal(str(b))] for m, a, b in prices],
                  column_names=["model", "usd_per_1m_input", "usd_per_1m_output"], database=db)
    stats.seconds = time.perf_counter() - started
    stats.users_by_tasks = sorted(per_user.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--tasks", type=int, help="number of tasks (overrides the preset)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", help="last day of history, YYYY-MM-DD (default: today UTC)")
    ap.add_argument("--url", help="ClickHouse HTTP URL (default: start an embedded one in --data-dir)")
    ap.add_argument("--data-dir", help="data directory of the embedded ClickHouse when no --url is given")
    ap.add_argument("--otel-database", default="otel")
    ap.add_argument("--database", default="swarmlens")
    ap.add_argument("--migrate", action="store_true", help="run swarmlens' migrations first")
    ap.add_argument("--pg-copy", help="also write the PostgreSQL task_history rows (COPY text) to this file")
    ap.add_argument("--batch", type=int, default=50_000, help="spans per insert")
    args = ap.parse_args()

    import clickhouse_connect

    from swarmlens import config as config_mod
    from swarmlens.store.migrate import migrate_from_config

    ep = None
    url = args.url
    if not url:
        from swarmlens.embedded.server import EmbeddedClickHouse

        ep = EmbeddedClickHouse(args.data_dir or "swarmlens-bench-data", port=0).start()
        url = ep.url
    try:
        if args.migrate or ep:
            migrate_from_config(config_mod.load({"SWARMLENS_CLICKHOUSE_URL": url,
                                                 "SWARMLENS_OTEL_DATABASE": args.otel_database,
                                                 "SWARMLENS_DATABASE": args.database}))
        end = datetime.strptime(args.end, "%Y-%m-%d").replace(tzinfo=timezone.utc) if args.end else None
        gen = Generator(args.tasks or PRESETS[args.preset], seed=args.seed, end=end)
        client = clickhouse_connect.get_client(dsn=url, compress=False, autogenerate_session_id=False)
        stats = load(client, gen, otel_db=args.otel_database, db=args.database, batch_spans=args.batch,
                     pg_copy_path=args.pg_copy)
    finally:
        if ep:
            ep.stop()
    print(f"{stats.tasks:,} tasks, {stats.spans:,} spans ({stats.spans / stats.tasks:.1f} per task), "
          f"{stats.errors:,} failed, {stats.feedback:,} votes in {stats.seconds:.1f} s "
          f"({stats.spans / stats.seconds:,.0f} spans/s; inserts {stats.insert_seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
