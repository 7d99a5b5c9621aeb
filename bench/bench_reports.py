"""Report latency at scale, side by side: swarmlens' derived tables (the reporter's own query files)
against the original PostgreSQL design (``task_history``) and against raw ``otel.otel_traces``
alone, on the same generated data in the same run; the reporter's pages through the Flask test
client; and bytes on disk, ClickHouse against PostgreSQL.

    .venv/bin/python -m bench.bench_reports --preset tiny            # CI size, about a minute
    .venv/bin/python -m bench.bench_reports --preset full --write-docs

Each report runs --reps times (at least 20) on each design after two warm-up runs; the designs
take turns within each repetition (the order rotates), so the noise of a shared machine hits them
alike, and every figure is quoted as a ratio against the others measured in that same loop.
ClickHouse is the embedded engine (chDB) over its HTTP interface, queried with clickhouse-connect
as the reporter does; PostgreSQL is Debian's package, installed and started here (bench/postgres.py),
queried with psycopg. When PostgreSQL cannot run, its column says so and the rest still runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from bench import adhoc, crosscheck, generate, pg_well
from bench.benchlib import progress, write_section
from bench.postgres import SETTINGS as PG_SETTINGS
from bench.postgres import PostgresServer, PostgresUnavailable

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
SECTIONS = ("## Reports at scale", "## Storage", "## How to reproduce", "## Answers cross-checked",
            "## Ad-hoc analyst queries", "## Ingest side by side")

# Targets of issue 6, checked in the tables.
TARGET_PAGE_P95_MS = 150
TARGET_POINT_VS_PG = 4  # issue 11: point lookups within 4× of PostgreSQL done well
TARGET_ADHOC_X = 10
TARGET_INGEST_X = 5
TARGET_STORAGE_SHARE = 1 / 3
TARGET_POINT_P95_MS = 10
TARGET_SEARCH_P95_MS = 20
TARGET_VS_PG = 20
TARGET_VS_RAW = 5
TARGET_BYTES_PER_SPAN = 60

# ---------------------------------------------------------------------------------------------
# The same reports three ways. "derived" names a reporter query file (store/queries/NAME.sql) with
# its parameters; "pg" and "raw" are the same report written for task_history and for otel_traces.

ROOT = "SpanName = 'invoke_workflow swarm'"
AGENT = "startsWith(SpanName, 'invoke_agent')"
CHAT = "(SpanName = 'chat' OR startsWith(SpanName, 'chat '))"
TIN = "toUInt64OrZero(SpanAttributes['swarm.task.usage.input_tokens'])"
TOUT = "toUInt64OrZero(SpanAttributes['swarm.task.usage.output_tokens'])"
AIN = "toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])"
AOUT = "toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])"
ERR = "positionCaseInsensitive(StatusCode, 'error') > 0"
RANGE = "Timestamp >= {start:DateTime64(3)} AND Timestamp < {end:DateTime64(3)}"
PRICES = "(SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL)"
RAW_AGENT_NAME = "SpanAttributes['gen_ai.agent.name']"
RAW_MODEL = "SpanAttributes['gen_ai.request.model']"

PG_RANGE = "created_at >= %(start)s AND created_at < %(end)s"
PG_RUNS = "task_history h CROSS JOIN LATERAL jsonb_array_elements(h.result->'agent_runs') r"
PG_RIN = "(r->>'input_tokens')::bigint"
PG_ROUT = "(r->>'output_tokens')::bigint"
PG_COST = f"({PG_RIN} * p.usd_per_1m_input + {PG_ROUT} * p.usd_per_1m_output) / 1e6"

RAW_USERS = f"""
SELECT t.user_id AS user_id, t.tasks AS tasks, t.input_tokens AS input_tokens, t.output_tokens AS output_tokens,
       t.tokens AS tokens, t.errors AS errors, c.cost_usd AS cost_usd
FROM (SELECT SpanAttributes['enduser.id'] AS user_id, count() AS tasks, sum({TIN}) AS input_tokens,
             sum({TOUT}) AS output_tokens, sum({TIN} + {TOUT}) AS tokens, countIf({ERR}) AS errors
      FROM {{otel:Identifier}}.otel_traces WHERE {ROOT} AND {RANGE} GROUP BY user_id) AS t
LEFT JOIN (SELECT SpanAttributes['enduser.id'] AS user_id,
                  sum({AIN} * toFloat64(p.usd_per_1m_input) + {AOUT} * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
           FROM {{otel:Identifier}}.otel_traces AS s LEFT JOIN {PRICES} AS p ON p.model = s.SpanAttributes['gen_ai.request.model']
           WHERE {AGENT} AND {RANGE} GROUP BY user_id) AS c ON c.user_id = t.user_id
ORDER BY tokens DESC, user_id LIMIT {{limit:UInt32}}"""

PG_USERS = f"""
WITH t AS (SELECT user_id, count(*) AS tasks, sum(prompt_tokens) AS input_tokens, sum(completion_tokens) AS output_tokens,
                  sum(total_tokens) AS tokens, count(*) FILTER (WHERE result->>'status' = 'error') AS errors
           FROM task_history WHERE {PG_RANGE} GROUP BY user_id),
     c AS (SELECT h.user_id, sum({PG_COST}) AS cost_usd FROM {PG_RUNS}
           LEFT JOIN model_prices p ON p.model = r->>'model' WHERE h.{PG_RANGE} GROUP BY h.user_id)
SELECT t.*, c.cost_usd FROM t LEFT JOIN c USING (user_id) ORDER BY tokens DESC, user_id LIMIT %(limit)s"""

RAW_SEARCH = f"""
SELECT TraceId AS task_id, SpanAttributes['enduser.id'] AS user_id, Timestamp AS start_time,
       intDiv(Duration, 1000000) AS duration_ms, StatusCode, SpanAttributes['error.type'] AS error_type,
       SpanAttributes['swarm.task.input'] AS input, SpanAttributes['swarm.task.output'] AS output,
       SpanAttributes['swarm.task.agents'] AS agents, SpanAttributes['swarm.task.final_agent'] AS final_agent,
       {TIN} + {TOUT} AS total_tokens
FROM {{otel:Identifier}}.otel_traces
WHERE {ROOT} AND {RANGE} AND ({{user:String}} = '' OR SpanAttributes['enduser.id'] = {{user:String}})
  AND (hasToken(lower(SpanAttributes['swarm.task.input']), {{q:String}})
       OR hasToken(lower(SpanAttributes['swarm.task.output']), {{q:String}}))
ORDER BY Timestamp DESC, TraceId DESC LIMIT 50"""

PG_SEARCH = """
SELECT id, user_id, created_at, input_message, agents, total_tokens, result FROM task_history
WHERE created_at >= %(start)s AND created_at < %(end)s AND (%(user)s = 0 OR user_id = %(user)s)
  AND input_message ILIKE %(pattern)s
ORDER BY created_at DESC, id DESC LIMIT 50"""

RAW_HISTORY = f"""
SELECT TraceId AS task_id, SpanAttributes['enduser.id'] AS user_id, SpanAttributes['session.id'] AS session_id,
       Timestamp AS start_time, intDiv(Duration, 1000000) AS duration_ms, StatusCode,
       SpanAttributes['error.type'] AS error_type, SpanAttributes['swarm.task.input'] AS input,
       SpanAttributes['swarm.task.output'] AS output, SpanAttributes['swarm.task.agents'] AS agents,
       SpanAttributes['gen_ai.agent.name'] AS start_agent, SpanAttributes['swarm.task.final_agent'] AS final_agent,
       SpanAttributes['swarm.task.handoffs'] AS handoffs, SpanAttributes['swarm.task.turns'] AS turns,
       {TIN} AS input_tokens, {TOUT} AS output_tokens, {TIN} + {TOUT} AS total_tokens
FROM {{otel:Identifier}}.otel_traces
WHERE {ROOT} AND SpanAttributes['enduser.id'] = {{user:String}}
  AND ({{has_cursor:UInt8}} = 0 OR (Timestamp, TraceId) < ({{cursor_time:DateTime64(3)}}, {{cursor_id:String}}))
ORDER BY Timestamp DESC, TraceId DESC LIMIT 50"""

PG_HISTORY = """
SELECT id, user_id, input_message, agents, prompt_tokens, completion_tokens, total_tokens, result, created_at
FROM task_history WHERE user_id = %(user)s AND (NOT %(has_cursor)s OR (created_at, id) < (%(cursor_time)s, %(cursor_id)s))
ORDER BY created_at DESC, id DESC LIMIT 50"""


def reports(p: dict) -> list[dict]:
    """Every compared report: name, kind, the derived query file and its parameters, the PG and raw SQL
    with theirs. ``p`` holds the run's parameters (periods, users, tasks, cursor)."""
    d30 = {"start": p["d30"], "end": p["dend"]}
    t30 = {"start": p["t30"], "end": p["tend"]}
    t7 = {"start": p["t7"], "end": p["tend"]}
    pg30, pg7 = {"start": p["n30"], "end": p["nend"]}, {"start": p["n7"], "end": p["nend"]}
    pgm = {"start": p["nm0"], "end": p["nm1"]}
    # {q}: words matched whole; {p1}..{p4} and {r1}..{r4}: words matched from their start (none here).
    search = {"start": p["t90"], "end": p["tend"], "agent": "", "status": "", "has_cursor": 0,
              "cursor_time": p["tend"], "cursor_id": "", "limit": 50,
              **{f"{k}{i}": "" for k in "pr" for i in range(1, 5)}}
    pg90 = {"start": p["n90"], "end": p["nend"]}
    history_first = {"user": p["user"], "has_cursor": 0, "cursor_time": p["tend"], "cursor_id": "", "limit": 50}
    history_deep = {"user": p["top_user"], "has_cursor": 1, "cursor_time": p["cursor_time"],
                    "cursor_id": p["cursor_id"], "limit": 50}
    return [
        {"name": "dashboard: totals, 30 days", "kind": "aggregate", "derived": ("task_totals_all", d30),
         "pg": ("""SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
                   count(*) FILTER (WHERE result->>'status' = 'error'), sum((result->>'duration_ms')::bigint),
                   count(DISTINCT user_id) FROM task_history WHERE """ + PG_RANGE, pg30),
         "raw": (f"""SELECT count(), sum({TIN}), sum({TOUT}), sum({TIN} + {TOUT}), countIf({ERR}),
                    sum(intDiv(Duration, 1000000)), uniqExact(SpanAttributes['enduser.id'])
                    FROM {{otel:Identifier}}.otel_traces WHERE {ROOT} AND {RANGE}""", t30)},
        {"name": "dashboard: 90-day daily trend", "kind": "aggregate",
         "derived": ("task_daily_all", {"start": p["d90"], "end": p["dend"]}),
         "pg": ("""SELECT created_at::date AS day, count(*), sum(total_tokens),
                   count(*) FILTER (WHERE result->>'status' = 'error'), count(DISTINCT user_id)
                   FROM task_history WHERE """ + PG_RANGE + " GROUP BY 1 ORDER BY 1", pg90),
         "raw": (f"""SELECT toDate(Timestamp) AS day, count(), sum({TIN} + {TOUT}), countIf({ERR}),
                    uniqExact(SpanAttributes['enduser.id']) FROM {{otel:Identifier}}.otel_traces
                    WHERE {ROOT} AND {RANGE} GROUP BY day ORDER BY day""", {"start": p["t90"], "end": p["tend"]})},
        {"name": "dashboard: top users, 30 days", "kind": "aggregate",
         "derived": ("tasks_by_user", {**d30, "limit": 10}),
         "pg": (PG_USERS, {**pg30, "limit": 10}), "raw": (RAW_USERS, {**t30, "limit": 10})},
        {"name": "agent ranking, 30 days", "kind": "aggregate", "derived": ("agents_ranking", {**t30, "detail": 1}),
         "pg": (f"""WITH per_task AS (
                      SELECT r->>'agent' AS agent, h.id, min(h.user_id) AS user_id, count(*) AS runs,
                             sum({PG_RIN} + {PG_ROUT}) AS tokens, sum({PG_RIN}) AS i, sum({PG_ROUT}) AS o,
                             count(*) FILTER (WHERE r->>'status' = 'error') AS errors,
                             sum((r->>'duration_ms')::bigint) AS duration_ms
                      FROM {PG_RUNS} WHERE h.{PG_RANGE} GROUP BY 1, 2)
                    SELECT agent, count(*) AS tasks, sum(runs), sum(tokens), sum(i), sum(o), avg(tokens),
                           percentile_disc(0.95) WITHIN GROUP (ORDER BY tokens), sum(errors),
                           count(DISTINCT user_id), sum(duration_ms)
                    FROM per_task GROUP BY agent ORDER BY tasks DESC, agent""", pg30),
         "raw": (f"""SELECT agent, count() AS tasks, sum(runs), sum(tokens), sum(i), sum(o), avg(tokens),
                        quantileExact(0.95)(tokens), sum(errors), uniqExact(user_id), sum(duration_ms)
                    FROM (SELECT {RAW_AGENT_NAME} AS agent, TraceId, any(SpanAttributes['enduser.id']) AS user_id,
                                 count() AS runs, sum({AIN} + {AOUT}) AS tokens, sum({AIN}) AS i, sum({AOUT}) AS o,
                                 countIf({ERR}) AS errors, sum(intDiv(Duration, 1000000)) AS duration_ms
                          FROM {{otel:Identifier}}.otel_traces WHERE {AGENT} AND {RANGE} GROUP BY agent, TraceId)
                    GROUP BY agent ORDER BY tasks DESC, agent""", t30)},
        {"name": "weekly report: agents, 7 days", "kind": "aggregate",
         "derived": ("usage_by_agent_all", {"start": p["d7"], "end": p["dend"], "limit": 1_000_000}),
         "pg": (f"""SELECT r->>'agent' AS agent, count(*) AS runs, sum({PG_RIN}), sum({PG_ROUT}),
                    sum({PG_RIN} + {PG_ROUT}) AS tokens, count(*) FILTER (WHERE r->>'status' = 'error'),
                    count(DISTINCT h.user_id), sum({PG_COST})
                    FROM {PG_RUNS} LEFT JOIN model_prices p ON p.model = r->>'model'
                    WHERE h.{PG_RANGE} GROUP BY 1 ORDER BY tokens DESC, agent""", pg7),
         "raw": (f"""SELECT {RAW_AGENT_NAME} AS agent, count() AS runs, sum({AIN}), sum({AOUT}), sum({AIN} + {AOUT}) AS tokens,
                    countIf({ERR}), uniqExact(SpanAttributes['enduser.id']),
                    sum({AIN} * toFloat64(p.usd_per_1m_input) + {AOUT} * toFloat64(p.usd_per_1m_output)) / 1e6
                    FROM {{otel:Identifier}}.otel_traces AS s LEFT JOIN {PRICES} AS p ON p.model = s.{RAW_MODEL}
                    WHERE {AGENT} AND {RANGE} GROUP BY agent ORDER BY tokens DESC, agent""", t7)},
        {"name": "weekly report: models, 7 days", "kind": "aggregate",
         "derived": ("usage_by_model_all", t7),
         "pg": (f"""SELECT r->>'model' AS model, sum((r->>'turns')::int) AS calls, sum({PG_RIN}), sum({PG_ROUT}),
                    sum({PG_RIN} + {PG_ROUT}) AS tokens, count(*) FILTER (WHERE r->>'status' = 'error'), sum({PG_COST})
                    FROM {PG_RUNS} LEFT JOIN model_prices p ON p.model = r->>'model'
                    WHERE h.{PG_RANGE} GROUP BY 1 ORDER BY tokens DESC, model""", pg7),
         "raw": (f"""SELECT {RAW_MODEL} AS model, count() AS calls, sum({AIN}), sum({AOUT}), sum({AIN} + {AOUT}) AS tokens,
                    countIf({ERR}),
                    sum({AIN} * toFloat64(p.usd_per_1m_input) + {AOUT} * toFloat64(p.usd_per_1m_output)) / 1e6
                    FROM {{otel:Identifier}}.otel_traces AS s LEFT JOIN {PRICES} AS p ON p.model = s.{RAW_MODEL}
                    WHERE {CHAT} AND {RANGE} GROUP BY model ORDER BY tokens DESC, model""", t7)},
        {"name": "monthly report: all users, last month", "kind": "aggregate",
         "derived": ("tasks_by_user", {"start": p["dm0"], "end": p["dm1"], "limit": 1_000_000}),
         "pg": (PG_USERS, {**pgm, "limit": 1_000_000}),
         "raw": (RAW_USERS, {"start": p["tm0"], "end": p["tm1"], "limit": 1_000_000})},
        {"name": "handoff graph, 30 days", "kind": "aggregate", "derived": ("handoff_graph", t30),
         "pg": (f"""SELECT r->>'handoff_from' AS from_agent, r->>'agent' AS to_agent, count(*) AS handoffs,
                    count(DISTINCT h.id) FROM {PG_RUNS} WHERE h.{PG_RANGE} AND r->>'handoff_from' <> ''
                    GROUP BY 1, 2 ORDER BY handoffs DESC, 1, 2""", pg30),
         "raw": (f"""SELECT SpanAttributes['swarm.handoff.from'] AS from_agent, {RAW_AGENT_NAME} AS to_agent,
                    count() AS handoffs, uniqExact(TraceId) FROM {{otel:Identifier}}.otel_traces
                    WHERE {AGENT} AND {RANGE} AND SpanAttributes['swarm.handoff.from'] != ''
                    GROUP BY from_agent, to_agent ORDER BY handoffs DESC, from_agent, to_agent""", t30)},
        {"name": "history: first page (50 rows)", "kind": "point", "derived": ("user_tasks", history_first),
         "pg": (PG_HISTORY, {"user": p["user_n"], "has_cursor": False, "cursor_time": p["nend"],
                             "cursor_id": "00000000-0000-0000-0000-000000000000"}),
         "raw": (RAW_HISTORY, history_first)},
        {"name": f"history: deep page (keyset, row {p['deep_offset']:,})", "kind": "point",
         "derived": ("user_tasks", history_deep),
         "pg": (PG_HISTORY, {"user": p["top_user_n"], "has_cursor": True, "cursor_time": p["cursor_time_naive"],
                             "cursor_id": p["cursor_uuid"]}),
         "raw": (RAW_HISTORY, history_deep)},
        {"name": "search: one user's tasks, 'refund'", "kind": "search",
         "derived": ("search_tasks", {**search, "user": p["user"], "q": "refund"}),
         "pg": (PG_SEARCH, {**pg90, "user": p["user_n"], "pattern": "%refund%"}),
         "raw": (RAW_SEARCH, {"start": p["t90"], "end": p["tend"], "user": p["user"], "q": "refund"})},
        {"name": "search: all tasks, 'refund' (common)", "kind": "search",
         "derived": ("search_tasks_all", {**search, "q": "refund"}),
         "pg": (PG_SEARCH, {**pg90, "user": 0, "pattern": "%refund%"}),
         "raw": (RAW_SEARCH, {"start": p["t90"], "end": p["tend"], "user": "", "q": "refund"})},
        {"name": "search: all tasks, 'firmware' (rare)", "kind": "search",
         "derived": ("search_tasks_all", {**search, "q": "firmware"}),
         "pg": (PG_SEARCH, {**pg90, "user": 0, "pattern": "%firmware%"}),
         "raw": (RAW_SEARCH, {"start": p["t90"], "end": p["tend"], "user": "", "q": "firmware"})},
        {"name": "task page: the task", "kind": "point", "derived": ("task", {"task": "@task"}),
         # the seed's SELECT *, spelled out: the done-well design's search columns are not the seed's
         "pg": (f"SELECT {pg_well.HISTORY_COLS} FROM task_history WHERE id = %(task)s", {"task": "@task_uuid"}),
         "raw": (f"""SELECT TraceId, SpanId, SpanAttributes, Timestamp, Duration, StatusCode, StatusMessage
                    FROM {{otel:Identifier}}.otel_traces WHERE TraceId = {{task:String}} AND {ROOT} LIMIT 1""",
                 {"task": "@task"})},
    ]


# How each design's rows become the report's normalised answer (crosscheck.py), and what is allowed
# to differ. Run-level figures (an agent run, a chat call, cost) count on the run's own UTC day in
# swarmlens and in raw spans, on the task's day in both PostgreSQL designs: the runs of a task that
# straddles a midnight at either end of the period differ; RUN_TOL bounds that.
TASK_TOL = crosscheck.EXACT
# From 100k tasks; below that a group holds few runs and one straddling task moves it by percents. At 1M
# tasks the largest difference seen was 2.8 % on one user's monthly cost (one run of about $0.01 on the
# other side of the month's end) and 0.5 % on one handoff pair (299 against 300); both PostgreSQL designs
# gave the same figures, and every task-level figure agreed exactly.
RUN_TOL = 3e-2
RUN_TOL_SMALL = 0.1
MAX_RUNS = max(generate.CHAIN_LENGTHS)  # runs per task at most: the rows one straddling task can move
SMALL_TASKS = 100_000


def _user(v):
    return generate.user_id_of(v) if isinstance(v, int) else v


def _users_pick(r):
    return (_user(r[0]),) + tuple(r[1:7])


def _ids(r):
    v = r[0]
    return (v.hex if hasattr(v, "hex") and not isinstance(v, (str, bytes)) else str(v).replace("-", ""),)


ANSWERS = {
    # name prefix: (keys, tolerance, {design: pick})
    "dashboard: totals": (0, TASK_TOL, {}),
    # the query file also returns input and output tokens apart (a user's figures are summed from them)
    "dashboard: 90-day": (1, TASK_TOL, {"derived": lambda r: r[:5]}),
    "dashboard: top users": (1, RUN_TOL, {d: _users_pick for d in ("derived", "raw", "pg", "pgw")}),
    # p95 per task: interpolated in swarmlens and the done-well design, discrete in the seed's SQL and raw spans
    "agent ranking": (1, RUN_TOL, {"raw": lambda r: r[:7] + (None,) + r[8:], "pg": lambda r: r[:7] + (None,) + r[8:]}),
    "weekly report: agents": (1, RUN_TOL, {}),
    "weekly report: models": (1, RUN_TOL, {"derived": lambda r: r[:6] + (r[8],)}),
    "monthly report": (1, RUN_TOL, {d: _users_pick for d in ("derived", "raw", "pg", "pgw")}),
    "handoff graph": (2, RUN_TOL, {}),
    "history": (0, TASK_TOL, {d: _ids for d in ("derived", "raw", "pg", "pgw")}),
    "search": (0, TASK_TOL, {d: _ids for d in ("derived", "raw", "pg", "pgw")}),
    "task page": (0, TASK_TOL, {"derived": lambda r: _ids(r) + (r[2], r[-1]),
                                "raw": lambda r: _ids(r) + (r[2]["enduser.id"],
                                                            int(r[2]["swarm.task.usage.input_tokens"])
                                                            + int(r[2]["swarm.task.usage.output_tokens"])),
                                "pg": lambda r: _ids(r) + (_user(r[1]), r[6]),
                                "pgw": lambda r: _ids(r) + (_user(r[1]), r[6])}),
}


def answer_rule(name: str):
    for prefix, rule in ANSWERS.items():
        if name.startswith(prefix):
            return rule
    raise KeyError(name)


def add_well_done(specs: list[dict], p: dict) -> list[dict]:
    """The PostgreSQL design done well (pg_well.py) for each report: summary tables, full-text
    search, one SQL text per variant (no generic plan)."""
    d30, d7, d90 = {"start": p["d30"], "end": p["dend"]}, {"start": p["d7"], "end": p["dend"]}, \
        {"start": p["d90"], "end": p["dend"]}
    n90 = {"start": p["n90"], "end": p["nend"]}
    pgw = {
        "dashboard: totals": (pg_well.TOTALS, d30),
        "dashboard: 90-day": (pg_well.DAILY, d90),
        "dashboard: top users": (pg_well.USERS, {**d30, "limit": 10}),
        "agent ranking": (pg_well.RANKING, d30),
        "weekly report: agents": (pg_well.BY_AGENT, d7),
        "weekly report: models": (pg_well.BY_MODEL, d7),
        "monthly report": (pg_well.USERS, {"start": p["dm0"], "end": p["dm1"], "limit": 1_000_000}),
        "handoff graph": (pg_well.HANDOFFS, d30),
        "history: first": (pg_well.HISTORY_FIRST, {"user": p["user_n"]}),
        "history: deep": (pg_well.HISTORY_AFTER, {"user": p["top_user_n"], "cursor_time": p["cursor_time_naive"],
                                                  "cursor_id": p["cursor_uuid"]}),
        "search: one user's": (pg_well.SEARCH_USER, {**n90, "user": p["user_n"], "q": "refund"}),
        "search: all tasks, 'refund'": (pg_well.SEARCH_ALL, {**n90, "q": "refund"}),
        "search: all tasks, 'firmware'": (pg_well.SEARCH_ALL, {**n90, "q": "firmware"}),
        "task page": (pg_well.TASK, {"task": "@task_uuid"}),
    }
    for spec in specs:
        spec["pgw"] = next(v for k, v in pgw.items() if spec["name"].startswith(k))
        spec["keys"], spec["tol"], spec["pick"] = answer_rule(spec["name"])
        if spec["tol"] == RUN_TOL and p["n_tasks"] < SMALL_TASKS:
            spec["tol"] = RUN_TOL_SMALL
    return specs


# ---------------------------------------------------------------------------------------------
# Timing


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q * (len(s) - 1)))))
    return s[k]


def summary(times: list[float]) -> dict:
    return {"p50_ms": statistics.median(times) * 1e3, "p95_ms": pct(times, 0.95) * 1e3, "runs": len(times)}


class Sides:
    """Runs one report on each design. Point lookups rotate through sample tasks, so no side answers
    the same id from a cache every time."""

    def __init__(self, ch, config, pg, tasks: list[tuple[str, str]], pgw=None):
        self.ch, self.config, self.pg, self.tasks, self.pgw = ch, config, pg, tasks, pgw
        self.i = 0

    def _bind(self, params: dict) -> dict:
        task_id, task_uuid = self.tasks[self.i % len(self.tasks)]
        return {k: task_id if v == "@task" else task_uuid if v == "@task_uuid" else v for k, v in params.items()}

    def derived(self, spec):
        from swarmlens.store.client import query_file

        name, params = spec
        result = query_file(self.ch, name, self._bind(params), config=self.config)
        self.last_summary = dict(getattr(result, "summary", None) or {})  # X-ClickHouse-Summary: the engine's side
        return result.result_rows

    def raw(self, spec):
        sql, params = spec
        params = self._bind(params)
        params.setdefault("otel", self.config["SWARMLENS_OTEL_DATABASE"])
        params.setdefault("db", self.config["SWARMLENS_DATABASE"])
        return self.ch.query(sql, parameters=params).result_rows

    def postgres(self, spec, conn=None):
        sql, params = spec
        with (conn or self.pg).cursor() as cur:
            cur.execute(sql, self._bind(params))
            return cur.fetchall()

    def postgres_well(self, spec):
        return self.postgres(spec, self.pgw)


def time_reports(sides: Sides, specs: list[dict], reps: int, warmup: int = 2) -> list[dict]:
    designs = [("derived", sides.derived), ("raw", sides.raw)]
    if sides.pg is not None:
        designs.append(("pg", sides.postgres))
    if sides.pgw is not None:
        designs.append(("pgw", sides.postgres_well))
    results = []
    total = len(specs) * (reps + warmup)
    done = 0
    for spec in specs:
        times = {d: [] for d, _ in designs}
        rows, errors, answers = {}, {}, {}
        for rep in range(reps + warmup):
            order = designs[rep % len(designs):] + designs[:rep % len(designs)]
            for d, run in order:
                if d in errors:
                    continue
                t = time.perf_counter()
                try:
                    out = run(spec[d])
                except Exception as exc:  # a query file the reporter is still changing: reported, not fatal
                    errors[d] = str(exc).splitlines()[0][:160]
                    sys.stderr.write(f"\n{spec['name']} ({d}) failed: {errors[d]}\n")
                    continue
                elapsed = time.perf_counter() - t
                if rep >= warmup:
                    times[d].append(elapsed)
                rows[d] = len(out)
                if rep == 0:  # the designs answer the same parameters (and sample task) in one repetition
                    answers[d] = (sides.i, out)
            sides.i += 1
            done += 1
            progress(done, total, "timing reports")
        summary_ = getattr(sides, "last_summary", {}) or {}
        profile = {k: summary_.get(k) for k in ("read_rows", "read_bytes", "elapsed_ns") if k in summary_}
        res = {"name": spec["name"], "kind": spec["kind"], "query": spec["derived"][0], "rows": rows, "profile": profile,
               "errors": errors, "check": check_answers(spec, answers), "tol": spec.get("tol")}
        for d, _ in designs:
            if d not in errors:
                res[d] = summary(times[d])
        if "derived" not in res:
            results.append(res)
            continue
        for d in ("pg", "pgw", "raw"):
            if d in res:
                res[f"x_{d}_p50"] = res[d]["p50_ms"] / res["derived"]["p50_ms"]
                res[f"x_{d}_p95"] = res[d]["p95_ms"] / res["derived"]["p95_ms"]
        results.append(res)
    return results


def boundary_tasks(ch, params: dict) -> int:
    """Tasks that start before one of the period's boundary midnights and end on or after it."""
    if "start" not in params or "end" not in params:
        return 0
    day = lambda v: v.date() if isinstance(v, datetime) else v  # noqa: E731
    return ch.query("SELECT count() FROM swarmlens.tasks FINAL WHERE (toDate(start_time) < {a:Date} AND "
                    "toDate(end_time) >= {a:Date}) OR (toDate(start_time) < {b:Date} AND toDate(end_time) >= {b:Date})",
                    parameters={"a": day(params["start"]), "b": day(params["end"])}).result_rows[0][0]


def tolerance(tol: float, design: str) -> float:
    """The same rules for every design: raw spans also differ from the rollups on run-level figures
    (at 1M tasks by up to 0.015 %: the per-day rollups count a task that straddles a midnight once per day)."""
    return tol


def retolerate(res: dict) -> None:
    """Applies this file's tolerance rules to the differences a results file recorded (--render)."""
    n = res.get("meta", {}).get("tasks", 0)
    for r in res.get("reports", []):
        try:
            _, tol, _ = answer_rule(r["name"])
        except KeyError:
            continue
        if tol == RUN_TOL and n < SMALL_TASKS:
            tol = RUN_TOL_SMALL
        r["tol"] = tol
        for d, c in r.get("check", {}).items():
            if c.get("max_rel") is not None and c.get("diff") != "answers of different sample tasks":
                c["ok"] = c["max_rel"] <= tolerance(tol, d) or bool(c.get("explained"))


def check_answers(spec: dict, answers: dict) -> dict:
    """Each design's answer against the derived tables' (same run, same parameters: point lookups
    compare the answers of the same sample task, the first repetition of each design)."""
    if "derived" not in answers:
        return {}
    ref_i, ref = answers["derived"]
    pick = spec.get("pick", {})
    ref_rows = crosscheck.norm_rows(ref, pick.get("derived"))
    out = {}
    for d, (i, rows) in answers.items():
        if d == "derived":
            continue
        if spec["kind"] == "point" and i != ref_i:
            out[d] = {"ok": False, "max_rel": None, "diff": "answers of different sample tasks", "rows": len(ref)}
            continue
        c = crosscheck.compare(ref_rows, crosscheck.norm_rows(rows, pick.get(d)), spec.get("keys", 0),
                               tolerance(spec.get("tol", crosscheck.EXACT), d))
        # Beyond the tolerance, a run-level row may still differ when a task straddling one of the
        # period's boundary midnights explains it: at most MAX_RUNS rows per such task (its runs).
        allowance = MAX_RUNS * spec.get("boundary_tasks", 0) if spec.get("tol", 0) > crosscheck.EXACT else 0
        if not c["ok"] and math.isfinite(c["max_rel"]) and c.get("bad_rows", 0) <= allowance:
            c["ok"] = True
            c["explained"] = (f"{c['bad_rows']} row(s) beyond the tolerance, within {allowance} that the "
                              f"{spec['boundary_tasks']} task(s) straddling the period's boundaries can move")
        out[d] = c
    return out


# ---------------------------------------------------------------------------------------------
# Every query file of the reporter, and its pages


def _guess(name: str, typ: str, p: dict, query: str) -> object:
    """A realistic value for a query file's parameter, from its name and type."""
    task_query = "{task:String}" in query
    if name == "start":
        if task_query:
            return p["task_start"]
        return p["d30"] if typ == "Date" else p["t30"]
    if name == "end":
        if task_query:
            return p["task_end"]
        return p["dend"] if typ == "Date" else p["tend"]
    values = {"user": p["user"], "task": p["task"], "limit": 50, "q": "refund", "agent": "", "status": "",
              "has_cursor": 0, "cursor_time": p["tend"], "cursor_id": "", "vote": 0, "login": "bench",
              "plan": "pro", "token_hash": "0" * 64, "owner": "", "detail": 1, "cap": 10_001, "model": "",
              **{f"{k}{i}": "" for k in "pr" for i in range(1, 5)}}
    if name in values:
        return values[name]
    if typ.startswith(("UInt", "Int")):
        return 0
    if typ.startswith("Date"):
        return p["tend"] if typ.startswith("DateTime") else p["dend"]
    return ""


def time_query_files(ch, config, p: dict, reps: int) -> list[dict]:
    import re
    from importlib import resources

    from swarmlens.store.client import query_file

    try:
        files = sorted(f for f in resources.files("swarmlens.store").joinpath("queries").iterdir()
                       if f.name.endswith(".sql"))
    except FileNotFoundError:
        return []
    out = []
    for k, f in enumerate(files):
        text = f.read_text(encoding="utf-8")
        params = {}
        for name, typ in re.findall(r"\{(\w+):([^}]+)\}", text):
            if typ != "Identifier":
                params[name] = _guess(name, typ, p, text)
        times, rows, error = [], 0, ""
        try:
            for rep in range(reps + 1):
                t = time.perf_counter()
                rows = len(query_file(ch, f.name[:-4], params, config=config).result_rows)
                if rep:
                    times.append(time.perf_counter() - t)
        except Exception as exc:  # a file the reporter is still writing: shown as failed, not fatal
            error = str(exc).splitlines()[0][:120]
        progress(k + 1, len(files), "timing query files")
        out.append({"query": f.name[:-4], "rows": rows, "error": error, **(summary(times) if times else {})})
    return out


def time_pages(config_overrides: dict, p: dict, reps: int) -> tuple[list[dict], str]:
    """Server time of the reporter's GET pages through the Flask test client, signed in as ops with
    an API token. Returns (results, reason when not measured)."""
    try:
        from swarmlens import auth
        from swarmlens.app import create_app
        from swarmlens.store.client import connect
    except Exception as exc:
        return [], f"the reporter app is not importable ({exc.__class__.__name__}: {exc})"
    try:
        # Every repetition computes its page: no reuse of results (each run reads the same data).
        app = create_app({**config_overrides, "SWARMLENS_REPORTER_CACHE_BYTES": 0, "TESTING": True})
    except Exception as exc:
        return [], f"create_app failed: {exc}"
    cfg = app.config["SWARMLENS"]
    client = connect(cfg)
    try:
        auth.set_ops_password(client, cfg, "bench", "bench-password", create=True)
        token, _ = auth.create_token(client, cfg, scope="ops", owner="bench", name="bench")
    except Exception as exc:
        return [], f"could not create an ops API token: {exc}"
    finally:
        client.close()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        from swarmlens.web.common import encode_cursor

        deep = f"?cursor={encode_cursor(p['cursor_time'], p['cursor_id'])}"
    except Exception:  # the cursor format is the reporter's; without it the deep page is left out
        deep = None
    values = {"task_id": p["task"], "task": p["task"], "user_id": p["user"], "user": p["user"], "agent": "Billing",
              "month": f"{p['dm0']:%Y-%m}", "week": f"{p['week_key']}"}
    from_90 = f"&from={p['d90']:%Y-%m-%d}"
    extra = {"search.search": [(f"?q=refund{from_90}", "search: all tasks, 'refund', 90 days"),
                               (f"?q=firmware{from_90}", "search: all tasks, 'firmware', 90 days"),
                               (f"?q=refund&user={p['user']}{from_90}", "search: one user's, 'refund', 90 days")],
             "users.user_page": [(deep, f"user page, deep page (keyset, row {p['deep_offset']:,})")] if deep else [],
             # Filters: a date range, an agent, a model, a user (the agent level of usage_daily).
             "dashboard.dashboard": [(f"?from={p['d30']:%Y-%m-%d}&to={p['dend'] - timedelta(days=1):%Y-%m-%d}",
                                      "dashboard: a 30-day range"),
                                     ("?period=30d&agent=Billing", "dashboard: one agent, 30 days"),
                                     ("?period=30d&model=o3-mini", "dashboard: one model, 30 days"),
                                     (f"?period=30d&user={p['top_user']}&agent=Triage", "dashboard: a user and an agent")],
             "agents.agents": [("?period=30d&user=" + p["top_user"], "agents: one user, 30 days"),
                               ("?period=30d&model=o3-mini", "agents: one model, 30 days")]}
    extra["search.search"].append((f"?q=refun{from_90}", "search: all tasks, 'refun' (start of a word), 90 days"))
    values_for_extra = {"users.user_page": {"user_id": p["top_user"]}}
    pages = []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            if "GET" not in rule.methods or rule.endpoint == "static" or rule.rule.startswith("/api/"):
                continue
            if any(a not in values for a in rule.arguments):
                continue
            if any(w in rule.rule for w in ("logout", "login", ".pdf", ".csv", "/pdf", "/csv", "export")):
                continue
            path = rule.rule
            for a in rule.arguments:
                path = path.replace(f"<{a}>", str(values[a]))
                for conv in ("string", "path", "int"):
                    path = path.replace(f"<{conv}:{a}>", str(values[a]))
            pages.append((rule.endpoint, path, f"`{rule.endpoint}`"))
            for suffix, label in extra.get(rule.endpoint, []):
                base = rule.rule
                for a in rule.arguments:
                    v = values_for_extra.get(rule.endpoint, {}).get(a, values[a])
                    base = base.replace(f"<{a}>", str(v)).replace(f"<path:{a}>", str(v))
                pages.append((rule.endpoint, base + suffix, label))
    tc = app.test_client()
    out = []
    for k, (endpoint, path, label) in enumerate(pages):
        times, status = [], 0
        for rep in range(reps + 1):
            t = time.perf_counter()
            try:
                r = tc.get(path, headers=headers)
            except Exception as exc:  # the reporter is being written alongside: a failing page is shown as such
                status = f"{exc.__class__.__name__}: {str(exc)[:100]}"
                break
            elapsed = time.perf_counter() - t
            status = r.status_code
            if status >= 400:
                break
            if rep:
                times.append(elapsed)
        progress(k + 1, len(pages), "timing reporter pages")
        out.append({"page": label, "path": path, "status": status, **(summary(times) if times else {})})
    return out, ""


# ---------------------------------------------------------------------------------------------
# Storage


def ch_storage(ch, otel_db: str, db: str, spans: int, tasks: int, sample_days: int | None) -> dict:
    parts = ch.query(
        "SELECT database, table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), "
        "sum(data_uncompressed_bytes), count() FROM system.parts WHERE active AND database IN ({a:String}, {b:String}) "
        "GROUP BY database, table ORDER BY database, table", parameters={"a": otel_db, "b": db}).result_rows
    tables = [{"table": f"{d}.{t}", "rows": r, "bytes": b, "compressed": c, "uncompressed": u, "parts": n}
              for d, t, r, b, c, u, n in parts]
    # system.parts_columns rather than system.columns: chDB leaves the sizes in system.columns at zero.
    columns = ch.query(
        "SELECT column, sum(column_data_compressed_bytes) AS c, sum(column_data_uncompressed_bytes) "
        "FROM system.parts_columns WHERE active AND database = {a:String} AND table = 'otel_traces' "
        "GROUP BY column ORDER BY c DESC",
        parameters={"a": otel_db}).result_rows
    # Spans without message content: a sample of whole days copied twice into tables of the same DDL,
    # once as stored and once without the task input/output attributes, both merged to one part per day.
    days = ch.query(f"SELECT DISTINCT toDate(Timestamp) AS d FROM `{otel_db}`.otel_traces ORDER BY d DESC "
                    f"LIMIT {int(sample_days or 1000)} OFFSET 1").result_rows
    lo, hi = min(d for (d,) in days), max(d for (d,) in days)
    ch.command("CREATE DATABASE IF NOT EXISTS bench_storage")
    sample = {}
    for label, attrs in (("with content", "SpanAttributes"),
                         ("without content", "mapFilter((k, v) -> k NOT IN ('swarm.task.input', 'swarm.task.output'), SpanAttributes)")):
        name = "with_content" if label == "with content" else "without_content"
        ch.command(f"DROP TABLE IF EXISTS bench_storage.{name}")
        ch.command(f"CREATE TABLE bench_storage.{name} AS `{otel_db}`.otel_traces")
        cols = [r[0] for r in ch.query(f"SELECT name FROM system.columns WHERE database = 'bench_storage' "
                                       f"AND table = '{name}' AND default_kind != 'ALIAS'").result_rows]
        select = ", ".join(attrs + " AS SpanAttributes" if c == "SpanAttributes" else f"`{c}`" for c in cols)
        ch.command(f"INSERT INTO bench_storage.{name} ({', '.join('`' + c + '`' for c in cols)}) SELECT {select} "
                   f"FROM `{otel_db}`.otel_traces WHERE toDate(Timestamp) BETWEEN '{lo}' AND '{hi}'",
                   settings={"max_partitions_per_insert_block": 1000})
        ch.command(f"OPTIMIZE TABLE bench_storage.{name} FINAL")
        r, b = ch.query("SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND "
                        f"database = 'bench_storage' AND table = '{name}'").result_rows[0]
        sample[label] = {"rows": r, "bytes": b, "per_span": b / max(r, 1)}
    ch.command("DROP DATABASE bench_storage")
    sample["days"] = f"{lo} to {hi}"
    return {"tables": tables, "columns": [{"column": n, "compressed": c, "uncompressed": u} for n, c, u in columns],
            "sample": sample, "spans": spans, "tasks": tasks}


def pg_storage(pg) -> dict:
    with pg.cursor() as cur:
        cur.execute("""SELECT pg_total_relation_size('task_history'), pg_relation_size('task_history'),
                              pg_indexes_size('task_history'),
                              coalesce(pg_total_relation_size(reltoastrelid), 0)
                       FROM pg_class WHERE relname = 'task_history'""")
        total, heap, indexes, toast = cur.fetchone()
        cur.execute("""SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index
                       WHERE indrelid = 'task_history'::regclass ORDER BY 2 DESC""")
        per_index = cur.fetchall()
    return {"total": total, "heap": heap, "indexes": indexes, "toast": toast,
            "per_index": [{"index": n, "bytes": b} for n, b in per_index]}


# ---------------------------------------------------------------------------------------------
# Loading PostgreSQL


def load_postgres(pg, copy_path: str, holdback: int = 0) -> tuple[float, list[str]]:
    """COPY of every task but the last ``holdback`` (returned: they go through the app's write path
    later, pg_well.measure_ingest), then the seed's indexes. Returns (seconds, held-back lines)."""
    held: list[str] = []
    if holdback:  # streamed: at 10M tasks the file is about 10 GB
        with open(copy_path, encoding="utf-8") as f:
            total = sum(1 for _ in f)
        keep = max(0, total - holdback)
        with open(copy_path, encoding="utf-8") as f, open(copy_path + ".head", "w", encoding="utf-8") as out:
            for i, line in enumerate(f):
                if i < keep:
                    out.write(line)
                else:
                    held.append(line)
        os.replace(copy_path + ".head", copy_path)
    started = time.perf_counter()
    with pg.cursor() as cur:
        cur.execute(generate.PG_DDL)
        cur.execute("CREATE TABLE model_prices (model TEXT PRIMARY KEY, usd_per_1m_input NUMERIC, "
                    "usd_per_1m_output NUMERIC)")
        for m, (a, b) in generate.MODEL_PRICES.items():
            cur.execute("INSERT INTO model_prices VALUES (%s, %s, %s)", (m, a, b))
        size = os.path.getsize(copy_path)
        with cur.copy(f"COPY task_history ({', '.join(generate.PG_COLUMNS)}) FROM STDIN") as copy, \
                open(copy_path, "rb") as f:
            sent = 0
            while chunk := f.read(1 << 20):
                copy.write(chunk)
                sent += len(chunk)
                progress(sent, size, "PostgreSQL COPY")
        for stmt in generate.PG_INDEXES.strip().split(";"):
            if stmt.strip():
                cur.execute(stmt)
    pg.commit()
    pg.autocommit = True
    pg.execute("VACUUM ANALYZE task_history")
    pg.execute("VACUUM ANALYZE model_prices")
    return time.perf_counter() - started, held


def time_adhoc(ch, pgw, reps: int, dbs: dict) -> list[dict]:
    """Each analyst question on swarmlens' tables and on the PostgreSQL design done well, taking
    turns, one warm-up run each; the first answers are cross-checked."""
    out = []
    total = len(adhoc.QUERIES) * (reps + 1)
    done = 0
    for q in adhoc.QUERIES:
        times = {"ch": [], "pgw": []}
        answers, errors = {}, {}
        for rep in range(reps + 1):
            order = ("ch", "pgw") if rep % 2 == 0 else ("pgw", "ch")
            for d in order:
                if d in errors or (d == "pgw" and pgw is None):
                    continue
                t = time.perf_counter()
                try:
                    if d == "ch":
                        rows = ch.query(q["ch"], parameters=dbs).result_rows
                    else:
                        with pgw.cursor() as cur:
                            cur.execute(q["pg"])
                            rows = cur.fetchall()
                except Exception as exc:
                    errors[d] = str(exc).splitlines()[0][:200]
                    sys.stderr.write(f"\nad-hoc '{q['name']}' ({d}) failed: {errors[d]}\n")
                    continue
                if rep:
                    times[d].append(time.perf_counter() - t)
                else:
                    answers[d] = rows
            done += 1
            progress(done, total, "timing ad-hoc queries")
        r = {"name": q["name"], "errors": errors, "rows": len(answers.get("ch", []))}
        for d in ("ch", "pgw"):
            if times[d]:
                r[d] = {"p50_ms": statistics.median(times[d]) * 1e3, "min_ms": min(times[d]) * 1e3, "runs": len(times[d])}
        if "ch" in r and "pgw" in r:
            r["x_pgw_p50"] = r["pgw"]["p50_ms"] / r["ch"]["p50_ms"]
        if "ch" in answers and "pgw" in answers:
            r["check"] = crosscheck.compare(crosscheck.norm_rows(answers["ch"]), crosscheck.norm_rows(answers["pgw"]),
                                            q["keys"], q.get("tol", crosscheck.EXACT))
            r["tol"] = q.get("tol", crosscheck.EXACT)
            r["why"] = q.get("why", "")
        out.append(r)
    return out


def check_failures(res: dict) -> list[str]:
    """Every answer that differs beyond its tolerance, or that could not be compared."""
    bad = []
    for r in res.get("reports", []):
        for d, c in r.get("check", {}).items():
            if not c.get("ok"):
                bad.append(f"{r['name']}: {d} differs from the derived tables: {c.get('diff')}")
        for d in ("raw", "pg", "pgw"):
            if d in r.get("errors", {}):
                bad.append(f"{r['name']}: {d} failed: {r['errors'][d]}")
        if "derived" in r.get("errors", {}):
            bad.append(f"{r['name']}: derived failed: {r['errors']['derived']}")
    for r in res.get("adhoc", []):
        if r.get("errors"):
            bad.append(f"ad-hoc '{r['name']}' failed: {r['errors']}")
        elif "check" in r and not r["check"]["ok"]:
            bad.append(f"ad-hoc '{r['name']}': PostgreSQL differs from swarmlens: {r['check']['diff']}")
    return bad


# ---------------------------------------------------------------------------------------------
# Output


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_x(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.0f}×" if v >= 10 else f"{v:.1f}×"


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return ""


def _cell(r: dict, d: str) -> tuple[str, str]:
    if d not in r:
        return ("failed" if d in r.get("errors", {}) else "unavailable"), "n/a"
    x = r.get(f"x_{d}_p50")
    return f"{fmt_ms(r[d]['p50_ms'])} / {fmt_ms(r[d]['p95_ms'])}", (f"{fmt_x(x)} ({fmt_x(r[f'x_{d}_p95'])})" if x else "n/a")


def _speed(x: float | None) -> str:
    """A ratio as who is faster: '3.1× swarmlens' or '2.0× PostgreSQL'."""
    if x is None:
        return "n/a"
    return f"{fmt_x(x)} swarmlens" if x >= 1 else f"{fmt_x(1 / x)} the other design"


def _faster(x: float | None, other: str) -> str:
    if x is None:
        return f"{other}: n/a"
    return f"swarmlens {fmt_x(x)} faster than {other}" if x >= 1 else f"{other} {fmt_x(1 / x)} faster than swarmlens"


def _answers_cell(r: dict) -> str:
    c = r.get("check") or {}
    if not c:
        return "not compared"
    bad = [d for d, v in c.items() if not v.get("ok")]
    return "agree" if not bad else "**differ: " + ", ".join(DESIGN_NAMES[d] for d in bad) + "**"


DESIGN_NAMES = {"derived": "swarmlens", "pgw": "PostgreSQL done well", "pg": "PostgreSQL as the seed wrote it",
                "raw": "raw spans"}


def markdown(res: dict) -> dict[str, str]:
    m = res["meta"]
    pg_note = m["postgres"] if m.get("postgres_error") is None else f"unavailable ({m['postgres_error']})"
    lines = [SECTIONS[0], "",
             f"Preset `{m['preset']}`: {m['tasks']:,} tasks, {m['spans']:,} spans ({m['spans'] / m['tasks']:.1f} per "
             f"task), {m['users']:,} users, {m['days']} days ending {m['end'][:10]}, seed {m['seed']}. "
             f"Every figure below comes from one run of `.venv/bin/python -m bench.bench_reports --preset "
             f"{m['preset']}`; p50 and p95 over {m['reps']} runs per design, the four designs taking turns in "
             "each run (the order rotates).", "",
             f"- **swarmlens**: the reporter's own query file (`store/queries/NAME.sql`) on swarmlens' derived "
             f"tables, embedded ClickHouse (chDB {m['chdb']}) over HTTP with clickhouse-connect, as the reporter runs it;",
             f"- **PostgreSQL done well** ({pg_note}): `task_history` plus summary tables equivalent to the "
             "rollups, kept current by a statement-level AFTER INSERT trigger (upserts over the inserted rows); "
             "input and output as stored `tsvector`s of their alphanumeric words with GIN indexes (swarmlens' "
             "whole-word, case-insensitive search); per-query plans (psycopg `prepare_threshold=None`, one SQL "
             "text per variant, no `param = '' OR` pattern), each plan printed with EXPLAIN in the bench log "
             "(`bench/pg_well.py`);",
             "- **PostgreSQL as the seed wrote it**: the same `task_history` with the seed's queries: every "
             "report recomputed from the `result` JSONB per request, pg_trgm `ILIKE` on the input, psycopg's "
             "default prepared statements (a generic plan after five runs);",
             "- **raw spans**: the same report computed from `otel.otel_traces` alone (no derived table; the "
             "price table joined for cost).", "",
             "× = the other design's time / swarmlens' time at p50 (p95 in brackets): above 1 swarmlens is "
             "faster, below 1 the other design is. \"answers\" says whether all four designs gave the same "
             "answer in this run (see \"Answers cross-checked\").", "",
             "| report | swarmlens p50 / p95 ms | PG done well p50 / p95 ms | × vs PG done well | PG as seed p50 / p95 ms "
             "| × vs PG as seed | raw spans p50 / p95 ms | × vs raw | answers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["reports"]:
        if "derived" not in r:
            lines.append(f"| {r['name']} (`{r['query']}`) | failed: {r['errors'].get('derived')} | | | | | | | |")
            continue
        d = r["derived"]
        w, pg_, raw = _cell(r, "pgw"), _cell(r, "pg"), _cell(r, "raw")
        lines.append(f"| {r['name']} (`{r['query']}`) | {fmt_ms(d['p50_ms'])} / {fmt_ms(d['p95_ms'])} | {w[0]} | {w[1]} "
                     f"| {pg_[0]} | {pg_[1]} | {raw[0]} | {raw[1]} | {_answers_cell(r)} |")
    gm = lambda xs: statistics.geometric_mean(xs) if xs else None  # noqa: E731
    for kind, label in (("aggregate", "Aggregate reports (8)"), ("search", "Searches (3)"), ("point", "Point lookups (3)")):
        rs = [r for r in res["reports"] if r["kind"] == kind and "derived" in r]
        if rs:
            parts = [_faster(gm([r[f"x_{d}_p50"] for r in rs if f"x_{d}_p50" in r]), DESIGN_NAMES[d])
                     for d in ("pgw", "pg", "raw")]
            lines += ["", f"{label}, geometric mean of the p50 ratios: " + "; ".join(parts) + "."]
    slower = [r for r in res["reports"] if r.get("x_pgw_p50") and r["x_pgw_p50"] < 1]
    if slower:
        lines += ["", f"Where PostgreSQL done well is faster, the profile of swarmlens' query (the last timed run: "
                      f"the engine's own time and what it read, from `X-ClickHouse-Summary`; `SELECT 1` over the "
                      f"same HTTP client takes {fmt_ms(res.get('floor_ms'))} ms p50):", "",
                  "| report | swarmlens p50 ms | engine ms | rows read | bytes read | PG done well p50 ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in slower:
            pr = r.get("profile") or {}
            eng = int(pr["elapsed_ns"]) / 1e6 if pr.get("elapsed_ns") else None
            lines.append(f"| {r['name']} | {fmt_ms(r['derived']['p50_ms'])} | {fmt_ms(eng)} | "
                         f"{int(pr.get('read_rows') or 0):,} | {fmt_bytes(int(pr.get('read_bytes') or 0))} | "
                         f"{fmt_ms(r['pgw']['p50_ms'])} |")
    point = [r for r in res["reports"] if r["kind"] == "point" and "x_pgw_p50" in r]
    if point:
        worst = min(r["x_pgw_p50"] for r in point)
        lines += ["", f"Point lookups, target within {TARGET_POINT_VS_PG}× of PostgreSQL done well: the slowest is "
                      f"{1 / worst:.1f}× PostgreSQL's time: {'met' if 1 / worst <= TARGET_POINT_VS_PG else '**missed**'}."]
    if res.get("pages"):
        lines += ["", f"Reporter pages, server time through the Flask test client (signed in with an ops API "
                      f"token; query, shaping and template rendering), {m['reps']} runs each; target p95 ≤ "
                      f"{TARGET_PAGE_P95_MS} ms:", "", "| page | path | p50 ms | p95 ms | target |", "|---|---|---:|---:|---|"]
        for pg_ in res["pages"]:
            if "p50_ms" not in pg_:
                lines.append(f"| {pg_['page']} | `{pg_['path']}` | failed: {pg_['status']} | | not measured |")
                continue
            ok = "met" if pg_["p95_ms"] <= TARGET_PAGE_P95_MS else "**missed**"
            lines.append(f"| {pg_['page']} | `{pg_['path']}` | {fmt_ms(pg_['p50_ms'])} | {fmt_ms(pg_['p95_ms'])} | {ok} |")
    else:
        lines += ["", f"Reporter pages: not measured: {res.get('pages_error') or 'no pages found'}."]
    if res.get("query_files"):
        lines += ["", f"Every query file of the reporter with realistic parameters (30-day periods, a typical "
                      f"user, a sample task), derived tables only, {m['reps']} runs each:", "",
                  "| query file | rows | p50 ms | p95 ms |", "|---|---:|---:|---:|"]
        for qf in res["query_files"]:
            if qf.get("error"):
                lines.append(f"| `{qf['query']}` | failed: {qf['error']} | | |")
            else:
                lines.append(f"| `{qf['query']}` | {qf['rows']} | {fmt_ms(qf['p50_ms'])} | {fmt_ms(qf['p95_ms'])} |")
    if res.get("notes"):
        lines += [""] + res["notes"]
    reports_md = "\n".join(lines) + "\n"

    s = res["storage"]
    otel = next((t for t in s["tables"] if t["table"].endswith(".otel_traces")), None)
    by_name = {t["table"]: t for t in s["tables"]}
    derived_bytes = sum(t["bytes"] for t in s["tables"] if not t["table"].startswith(m["otel_db"] + "."))
    chat = by_name.get(f"{m['db']}.chat_calls", {"bytes": 0})["bytes"]
    like = derived_bytes - chat
    aux = sum(t["bytes"] for t in s["tables"] if t["table"].startswith(m["otel_db"] + ".") and t is not otel)
    per_task = lambda b: f"{b / m['tasks']:,.0f}"  # noqa: E731
    lines = [SECTIONS[1], "",
             f"Bytes on disk after the `{m['preset']}` load ({m['tasks']:,} tasks, {m['spans']:,} spans), after "
             "merges (ClickHouse tables optimized, as background merges leave them; PostgreSQL after VACUUM "
             "ANALYZE, including the dead space the write-path measurement left).", "",
             "Like for like: what each design needs for the reports above, task rows, per-run detail, summary "
             "tables and search indexes.", "",
             "| store | bytes | per task |", "|---|---:|---:|",
             f"| swarmlens: every derived table of `{m['db']}` except `chat_calls` (tasks, agent runs, rollups, "
             f"task_search, feedback and configuration) | {fmt_bytes(like)} | {per_task(like)} |"]
    seed, well = res.get("pg_seed_storage"), res.get("pgw_storage")
    if seed:
        lines.append(f"| PostgreSQL as the seed wrote it: `task_history` (heap {fmt_bytes(seed['heap'])}, TOAST "
                     f"{fmt_bytes(seed['toast'])}, its 3 indexes {fmt_bytes(seed['indexes'])}) | {fmt_bytes(seed['total'])} "
                     f"| {per_task(seed['total'])} |")
    if well:
        trgm = well["task_history_indexes"].get("task_history_input_trgm", 0)
        total = sum(v["total"] for k, v in well.items() if k != "task_history_indexes") - trgm
        summ = sum(well[t]["total"] for t in pg_well.SUMMARY_TABLES)
        lines.append(f"| PostgreSQL done well: `task_history` with the search columns and GIN indexes "
                     f"({fmt_bytes(well['task_history']['total'] - trgm)}, without the seed's trigram index), summary "
                     f"tables ({fmt_bytes(summ)}) | {fmt_bytes(total)} | {per_task(total)} |")
        share = like / total if total else None
        if share:
            lines += ["", f"swarmlens needs **{share:.2f}×** the bytes of PostgreSQL done well for the same reports "
                          f"(target ≤ {TARGET_STORAGE_SHARE:.2f}×: {'met' if share <= TARGET_STORAGE_SHARE else '**missed**'})."]
    lines += ["", "What only swarmlens keeps:", "", "| store | bytes | per span | per task |", "|---|---:|---:|---:|"]
    if otel:
        lines.append(f"| every span: `otel_traces` (with task input/output) | {fmt_bytes(otel['bytes'])} | "
                     f"{otel['bytes'] / m['spans']:.1f} | {per_task(otel['bytes'])} |")
    lines.append(f"| `otel_traces_trace_id_ts` (trace lookup) | {fmt_bytes(aux)} | {aux / m['spans']:.1f} | {per_task(aux)} |")
    lines.append(f"| every chat call: `{m['db']}.chat_calls` | {fmt_bytes(chat)} | | {per_task(chat)} |")
    total_ch = (otel["bytes"] if otel else 0) + aux + derived_bytes
    lines.append(f"| swarmlens, everything | {fmt_bytes(total_ch)} | {total_ch / m['spans']:.1f} | {per_task(total_ch)} |")
    smp = s["sample"]
    w, wo = smp["with content"], smp["without content"]
    met = "met" if wo["per_span"] <= TARGET_BYTES_PER_SPAN else "**missed**"
    lines += ["", f"Spans without message content (target ≤ {TARGET_BYTES_PER_SPAN} bytes/span, ZSTD codecs of the "
                  f"contrib DDL): the days {smp['days']} ({w['rows']:,} spans) copied into two tables of the same DDL, "
                  f"one as stored, one without `swarm.task.input`/`swarm.task.output`, each merged: "
                  f"**{wo['per_span']:.1f} bytes/span without content** ({met}), {w['per_span']:.1f} with it.", "",
              "Per table (active parts):", "", "| table | rows | parts | on disk | bytes/row |", "|---|---:|---:|---:|---:|"]
    for t in s["tables"]:
        lines.append(f"| `{t['table']}` | {t['rows']:,} | {t['parts']} | {fmt_bytes(t['bytes'])} | "
                     f"{t['bytes'] / max(t['rows'], 1):.1f} |")
    if well:
        lines += ["", "PostgreSQL done well, per relation (with its indexes):", "", "| relation | bytes | indexes |",
                  "|---|---:|---:|"]
        for k, v in well.items():
            if k != "task_history_indexes":
                lines.append(f"| `{k}` | {fmt_bytes(v['total'])} | {fmt_bytes(v['indexes'])} |")
    lines += ["", "Largest `otel_traces` columns (system.parts_columns; chDB reports no sizes in system.columns):", "",
              "| column | compressed | per span | ratio |", "|---|---:|---:|---:|"]
    for c in s["columns"][:8]:
        lines.append(f"| `{c['column']}` | {fmt_bytes(c['compressed'])} | {c['compressed'] / m['spans']:.1f} | "
                     f"{c['uncompressed'] / max(c['compressed'], 1):.1f} |")
    storage_md = "\n".join(lines) + "\n"

    lines = [SECTIONS[2], "",
             f"Machine: {m['machine']}. Shared with other work while measuring, which is why every figure above is "
             "a ratio measured in the same loop rather than an absolute claim.", "",
             f"PostgreSQL: {m['postgres'] or 'unavailable'}, Debian's package, started by the bench in a temporary "
             f"directory with {', '.join(f'{k}={v}' for k, v in PG_SETTINGS.items())} (fsync off changes load "
             "time, not query time).", "",
             "Every table of this file, in one command (installs PostgreSQL with apt-get when run as root):", "",
             "```", ".venv/bin/python -m bench.run_all --preset full     # about 45 minutes at 1M tasks on 2 loaded cores",
             ".venv/bin/python -m bench.run_all --preset tiny     # CI size, the same code paths", "```", "",
             "or only the sections above:", "", "```",
             ".venv/bin/python -m bench.bench_reports --preset full --write-docs", "```", "",
             "10M tasks (about 92M spans), outside CI, with about 60 GB of free disk (ClickHouse, PostgreSQL and "
             "the COPY file):", "", "```",
             "nice -n 10 .venv/bin/python -m bench.bench_reports --preset 10m --reps 20 --adhoc-reps 2 \\",
             "    --json bench-10m.json --write-docs", "```", "",
             "Presets: `tiny` 2k tasks, `small` 50k, `full` 1M (about 9.2M spans), `10m` 10M; `--seed` (default 42) and "
             "`--end` (default today, UTC) make the data repeatable. The generator alone: "
             "`.venv/bin/python -m bench.generate --preset small --url http://127.0.0.1:8123 --migrate`.",
             f"Load time of this run: ClickHouse {m['load_seconds']:.0f} s for {m['spans']:,} spans "
             f"({m['spans'] / m['load_seconds']:,.0f} spans/s through HTTP, views on, generation included)"
             + (f", PostgreSQL COPY and indexes {m['pg_load_seconds']:.0f} s" if m.get("pg_load_seconds") else "") + "."]
    reproduce_md = "\n".join(lines) + "\n"
    return {SECTIONS[0]: reports_md, SECTIONS[3]: checks_markdown(res), SECTIONS[4]: adhoc_markdown(res),
            SECTIONS[5]: ingest_markdown(res), SECTIONS[1]: storage_md, SECTIONS[2]: reproduce_md}


def checks_markdown(res: dict) -> str:
    m = res["meta"]
    n_ok = sum(1 for r in res["reports"] for c in r.get("check", {}).values() if c.get("ok"))
    n_all = sum(len(r.get("check", {})) for r in res["reports"])
    lines = [SECTIONS[3], "",
             "In the same run, every report's answer from each design is normalised (numbers as floats, times "
             "in UTC to the millisecond, task ids as hex, user numbers as user ids) and compared with "
             "swarmlens' answer: key columns exactly, every other number within the stated relative "
             f"tolerance. The bench exits with status 1 when any answer differs. This run: **{n_ok} of {n_all} "
             "comparisons agree**.", "",
             "| report | rows | PG done well | PG as seed | raw spans | tolerance |", "|---|---:|---|---|---|---:|"]

    def cell(c):
        if not c:
            return "n/a"
        if not c["ok"]:
            return f"**differs**: {c['diff']}"
        if c.get("explained"):
            return f"same but for a boundary: {c['diff']}; {c['explained']}"
        return "same" if not c["max_rel"] else f"same (max rel. diff {c['max_rel']:.1e})"
    for r in res["reports"]:
        c = r.get("check", {})
        tol = r.get("tol") or 0
        tol_text = "exact" if tol <= crosscheck.EXACT else f"{tol:.0e}"
        lines.append(f"| {r['name']} | {r.get('rows', {}).get('derived', '')} | {cell(c.get('pgw'))} | {cell(c.get('pg'))} "
                     f"| {cell(c.get('raw'))} | {tol_text} |")
    lines += ["", "Known boundary differences, and what the comparison does about them:", "",
              "- **A run counts on its own day in swarmlens and in raw spans, on its task's day in both PostgreSQL "
              "designs** (the JSONB keeps no start time per run). The runs of a task that straddles a midnight at "
              "either end of a period are counted in different periods. Run-level figures (per agent, per model, "
              f"handoffs, cost) therefore get a relative tolerance of {RUN_TOL:.0e} from {SMALL_TASKS:,} tasks "
              f"({RUN_TOL_SMALL:.0%} below, where a group holds a few dozen runs); beyond it a row may differ only "
              f"when the tasks straddling one of the period's boundary midnights can explain it (at most {MAX_RUNS} "
              "rows per such task, counted in the run); task-level figures must be exact. "
              f"In this run {res.get('straddling_tasks', 'n/a')} of {m['tasks']:,} tasks straddle a midnight.",
              "- **p95 tokens per task in the agent ranking** is interpolated between ranks in swarmlens "
              "(`quantileExactInclusive`) and in PostgreSQL done well (`percentile_cont`), discrete in the seed's "
              "SQL (`percentile_disc`) and in the raw-span query (`quantileExact`): only the first two are compared.",
              "- **Ties in time**: swarmlens orders pages by (start time to the millisecond, task id), PostgreSQL "
              "by (created_at to the microsecond, id). Two tasks in the same millisecond could come in a different "
              "order at a page's edge; the data has none in the compared pages (the comparison is exact).",
              "- **Search semantics**: swarmlens and PostgreSQL done well match whole alphanumeric words, "
              "case-insensitively, in the input or the output; the seed's `ILIKE '%word%'` matches substrings of "
              "the input only. For the compared words ('refund', 'firmware') the generated texts give the same "
              "tasks; for other words (a prefix such as 'refun', a word only in outputs) the seed's answer differs "
              "by design.",
              "- **Tokenisation**: PostgreSQL's `simple` parser, fed only alphanumeric words, can still split a "
              "word of letters and digits differently from ClickHouse's `splitByNonAlpha` (for example `e2e`); "
              "plain words agree."]
    return "\n".join(lines) + "\n"


def adhoc_markdown(res: dict) -> str:
    m = res["meta"]
    rs = res.get("adhoc") or []
    lines = [SECTIONS[4], ""]
    if not rs:
        return "\n".join(lines + ["Not run (`--no-adhoc`)."]) + "\n"
    reps = next((r["ch"]["runs"] for r in rs if "ch" in r), 0)
    lines += [f"Questions no rollup answers, over all {m['days']} days of the `{m['preset']}` data, each written "
              "once against swarmlens' tables (derived `tasks`/`agent_runs`, raw `otel_traces` for tool calls) and "
              "once against PostgreSQL done well (`task_history`, its JSONB), in `bench/adhoc.py`. p50 of "
              f"{reps} run(s) after a warm-up, the two designs taking turns; answers cross-checked. × = PostgreSQL's "
              "time / swarmlens' time.", "",
              "| question | rows | swarmlens p50 ms | PG done well p50 ms | × | answers |", "|---|---:|---:|---:|---:|---|"]
    xs = []
    for r in rs:
        c = r.get("check")
        ans = "n/a" if not c else ("same" if c["ok"] and (not c["max_rel"] or r["tol"] <= crosscheck.EXACT) else
                                   f"same (max rel. diff {c['max_rel']:.1e}, tolerance {r['tol']:.0e}: {r['why']})"
                                   if c["ok"] else f"**differs**: {c['diff']}")
        if r.get("errors"):
            ans = f"**failed**: {r['errors']}"
        x = r.get("x_pgw_p50")
        if x:
            xs.append(x)
        lines.append(f"| {r['name']} | {r['rows']} | {fmt_ms(r.get('ch', {}).get('p50_ms'))} | "
                     f"{fmt_ms(r.get('pgw', {}).get('p50_ms'))} | {fmt_x(x)} | {ans} |")
    if xs:
        g = statistics.geometric_mean(xs)
        lines += ["", f"Geometric mean of the ratios: **{_faster(g, 'PostgreSQL done well')}** "
                      f"(target: swarmlens ≥ {TARGET_ADHOC_X}× faster at 10M tasks; at this size: "
                      f"{'met' if g >= TARGET_ADHOC_X else '**not met**'})."]
    return "\n".join(lines) + "\n"


def ingest_markdown(res: dict) -> str:
    m = res["meta"]
    lines = [SECTIONS[5], ""]
    ing = res.get("pg_ingest")
    ch_rate = m["tasks"] / m["insert_seconds"] if m.get("insert_seconds") else None
    lines += ["Tasks per second on the same machine in the same run:", "",
              "| write path | tasks/s | spans/s | note |", "|---|---:|---:|---|",
              f"| swarmlens: RowBinary inserts of ~50k spans into `otel_traces` over HTTP, every materialized view "
              f"on (tasks, runs, chat calls, all rollups, search) | {ch_rate:,.0f} | {m['spans'] / m['insert_seconds']:,.0f} "
              f"| time inside the inserts, {m['tasks']:,} tasks; the generator runs alongside on the same 2 cores |"
              if ch_rate else "| swarmlens | n/a | | |"]
    if ing:
        w, wo = ing["with_summaries_tasks_per_s"], ing["without_summaries_tasks_per_s"]
        lines += [f"| PostgreSQL, the seed's write path: one INSERT per task, one transaction each, seed indexes "
                  f"+ search columns and GIN indexes, **without** summary tables | {wo:,.0f} | | {ing['tasks']:,} tasks "
                  "into the loaded table |",
                  f"| PostgreSQL done well: the same, **with** the summary tables' trigger | {w:,.0f} | | the summary "
                  f"maintenance costs {(1 / w - 1 / wo) * 1e3:.2f} ms per task ({(wo / w - 1) * 100:.0f} % slower) |"]
        if res.get("pg_build"):
            b = res["pg_build"]
            lines += ["", f"One-off costs of the done-well design after the bulk load: search columns and GIN "
                          f"indexes {b['search_columns_and_indexes_s']:.1f} s, summary tables backfilled "
                          f"{b['summary_backfill_s']:.1f} s (the trigger's own statements over the whole table)."]
        if ch_rate:
            x = ch_rate / w
            lines += ["", f"swarmlens ingests **{fmt_x(x)}** the tasks/s of PostgreSQL done well's write path (target ≥ "
                          f"{TARGET_INGEST_X}×: {'met' if x >= TARGET_INGEST_X else '**missed**'}). The comparison is "
                          "of write paths as each design is fed: swarmlens in collector batches, the seed's app one "
                          "task per transaction. PostgreSQL runs with fsync and synchronous_commit off (its best case); "
                          "a batched COPY into PostgreSQL is faster still (bulk load: "
                          f"{m['tasks'] / m['pg_load_seconds']:,.0f} tasks/s with index builds), but the trigger "
                          "then does the same summary work per batch."]
    lines += ["", "End to end through the collector (OTLP → rotel → embedded ClickHouse), see \"Pipeline\" below."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def settle(ch, db: str, otel_db: str) -> None:
    """Merges what background merges would have merged by the time anyone reads a report."""
    tables = ch.query("SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
                      parameters={"db": db}).result_rows
    for (t,) in tables:
        ch.command(f"OPTIMIZE TABLE `{db}`.`{t}` FINAL")
    ch.command(f"OPTIMIZE TABLE `{otel_db}`.otel_traces_trace_id_ts FINAL")
    deadline = time.time() + 120
    while time.time() < deadline:
        if ch.query("SELECT count() FROM system.merges").result_rows[0][0] == 0:
            break
        time.sleep(1)


def params_for(ch, db: str, stats: generate.Stats, gen: generate.Generator) -> dict:
    end = gen.end
    dend = end.date()
    m1 = dend.replace(day=1)
    m0 = (m1 - timedelta(days=1)).replace(day=1)
    if (dend - m0).days > generate.DAYS:  # keep the month inside the data
        m1, m0 = dend, dend - timedelta(days=30)
    users = stats.users_by_tasks
    top_user, top_count = users[0]
    typical = users[min(9, len(users) - 1)][0]
    deep = min(5000, max(0, top_count - 60))
    row = ch.query(f"SELECT start_time, task_id FROM `{db}`.tasks FINAL WHERE user_id = {{u:String}} "
                   f"ORDER BY start_time DESC, task_id DESC LIMIT 1 OFFSET {deep}", parameters={"u": top_user}).result_rows
    cursor_time, cursor_id = row[0]
    task_rows = ch.query(f"SELECT task_id, start_time, end_time FROM `{db}`.tasks WHERE task_id IN {{ids:Array(String)}}",
                         parameters={"ids": stats.sample_task_ids}).result_rows
    utc = lambda d: datetime.combine(d, datetime.min.time(), tzinfo=timezone.utc)  # noqa: E731
    naive = lambda t: t.astimezone(timezone.utc).replace(tzinfo=None)  # noqa: E731
    p = {"dend": dend + timedelta(days=1), "d30": dend - timedelta(days=29), "d7": dend - timedelta(days=6),
         "d90": dend - timedelta(days=89), "dm0": m0, "dm1": m1}
    for k in ("end", "30", "7", "90", "m0", "m1"):
        key = "dend" if k == "end" else f"d{k}"
        p["tend" if k == "end" else f"t{k}"] = utc(p[key])
        p["nend" if k == "end" else f"n{k}"] = naive(utc(p[key]))
    iso = (dend - timedelta(days=7)).isocalendar()
    p.update({"user": typical, "user_n": int(typical.split("-")[1]), "top_user": top_user,
              "top_user_n": int(top_user.split("-")[1]), "deep_offset": deep, "cursor_time": cursor_time,
              "cursor_time_naive": naive(cursor_time), "cursor_id": cursor_id,
              "cursor_uuid": f"{cursor_id[:8]}-{cursor_id[8:12]}-{cursor_id[12:16]}-{cursor_id[16:20]}-{cursor_id[20:]}",
              "tasks": [(t, f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}") for t, _, _ in task_rows],
              "task": task_rows[0][0], "task_start": task_rows[0][1], "task_end": task_rows[0][2],
              "week_key": f"{iso[0]}-W{iso[1]:02d}"})
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(generate.PRESETS), default="tiny")
    ap.add_argument("--tasks", type=int, help="number of tasks (overrides the preset's)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", help="last day of history, YYYY-MM-DD (default: today UTC)")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per report and design (at least 20)")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL baseline")
    ap.add_argument("--no-pages", action="store_true", help="skip the reporter pages")
    ap.add_argument("--no-adhoc", action="store_true", help="skip the ad-hoc analyst queries")
    ap.add_argument("--no-query-files", action="store_true", help="skip timing every query file of the reporter")
    ap.add_argument("--adhoc-reps", type=int, default=5, help="timed runs per ad-hoc query and design")
    ap.add_argument("--ingest-tasks", type=int, default=20_000,
                    help="tasks held back from PostgreSQL's bulk load and written through its write path "
                         "(at most a tenth of the tasks)")
    ap.add_argument("--work-dir", help="where the databases live (default: a temporary directory, removed)")
    ap.add_argument("--write-docs", action="store_true", help=f"replace this bench's sections of {DOCS}")
    ap.add_argument("--docs", default=DOCS, help="the Markdown file --write-docs writes")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN indexes=1 of every derived report")
    ap.add_argument("--render", metavar="JSON", help="only print (and with --write-docs write) the tables of a "
                                                     "previous run's --json file")
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            res = json.load(f)
        retolerate(res)
        return _output(res, args)
    if args.reps < 3:
        ap.error("--reps must be at least 3 (20 for a p95 worth quoting; the published runs use 20)")

    import clickhouse_connect
    import chdb

    from swarmlens import config as config_mod
    from swarmlens.embedded.server import EmbeddedClickHouse
    from swarmlens.store.migrate import migrate_from_config

    import signal

    # A terminated run still stops its PostgreSQL server and removes its directories (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n_tasks = args.tasks or generate.PRESETS[args.preset]
    work = args.work_dir or tempfile.mkdtemp(prefix="swarmlens-bench-reports-")
    os.makedirs(work, exist_ok=True)
    ep = EmbeddedClickHouse(os.path.join(work, "clickhouse"), port=0).start()
    pg_server = pg = pgw = None
    pg_error = None
    res: dict = {"notes": []}
    try:
        overrides = {"SWARMLENS_CLICKHOUSE_URL": ep.url, "SWARMLENS_OTEL_DATABASE": "otel",
                     "SWARMLENS_DATABASE": "swarmlens", "SWARMLENS_DATA_DIR": os.path.join(work, "data")}
        cfg = config_mod.load(overrides)
        migrate_from_config(cfg)
        if not args.no_postgres:
            try:
                import psycopg

                # Its own temporary directory: the postgres user must be able to reach it.
                pg_server = PostgresServer().start()
                pg = psycopg.connect(pg_server.dsn)
            except (PostgresUnavailable, ImportError, OSError) as exc:
                pg_error = str(exc).splitlines()[0][:200]
                sys.stderr.write(f"PostgreSQL unavailable: {pg_error}\n")
        else:
            pg_error = "skipped with --no-postgres"
        end = datetime.strptime(args.end, "%Y-%m-%d").replace(tzinfo=timezone.utc) if args.end else None
        gen = generate.Generator(n_tasks, seed=args.seed, end=end)
        ch = clickhouse_connect.get_client(dsn=ep.url, compress=False, autogenerate_session_id=False)
        copy_path = os.path.join(work, "task_history.copy") if pg is not None else None
        stats = generate.load(ch, gen, otel_db="otel", db="swarmlens", pg_copy_path=copy_path)
        counts = ch.query("SELECT (SELECT count() FROM otel.otel_traces), (SELECT count() FROM swarmlens.tasks FINAL)"
                          ).result_rows[0]
        if counts != (stats.spans, stats.tasks):
            raise SystemExit(f"load lost rows: ClickHouse has {counts}, generated {(stats.spans, stats.tasks)}")
        sys.stderr.write(f"loaded {stats.tasks:,} tasks, {stats.spans:,} spans in {stats.seconds:.1f} s\n")
        pg_load = None
        if pg is not None:
            holdback = min(args.ingest_tasks, max(100, stats.tasks // 10))
            pg_load, held = load_postgres(pg, copy_path, holdback=holdback)
            res["pg_seed_storage"] = pg_storage(pg)  # the seed's design alone, before the additions below
            sys.stderr.write("PostgreSQL done well: search columns, summary tables, trigger ...\n")
            res["pg_build"] = pg_well.build(pg)
            sys.stderr.write(f"PostgreSQL write path: {len(held):,} tasks, one INSERT each, without and with "
                             "the summary tables' trigger ...\n")
            res["pg_ingest"] = pg_well.measure_ingest(pg, held)
            n = pg.execute("SELECT count(*) FROM task_history").fetchone()[0]
            if n != stats.tasks:
                raise SystemExit(f"PostgreSQL has {n} tasks, generated {stats.tasks}")
            os.remove(copy_path)
            res["pgw_storage"] = pg_well.storage(pg)
            pgw = psycopg.connect(pg_server.dsn, prepare_threshold=None, autocommit=True)
        sys.stderr.write("settling merges ...\n")
        settle(ch, "swarmlens", "otel")
        p = params_for(ch, "swarmlens", stats, gen)
        specs = reports(p)
        if args.explain:
            from swarmlens.store.client import read_query

            for spec in specs:
                name, params = spec["derived"]
                sys.stderr.write(f"\n== {spec['name']} ({name})\n")
                bound = {k: (p["task"] if v == "@task" else v) for k, v in params.items()}
                bound.update({"db": "swarmlens", "otel": "otel"})
                sys.stderr.write(ch.raw_query("EXPLAIN indexes = 1 " + read_query(name), parameters=bound).decode())
        p["n_tasks"] = stats.tasks
        add_well_done(specs, p)
        for spec in specs:
            spec["boundary_tasks"] = boundary_tasks(ch, spec["derived"][1])
        res["straddling_tasks"] = ch.query("SELECT count() FROM swarmlens.tasks FINAL "
                                           "WHERE toDate(start_time) != toDate(end_time)").result_rows[0][0]
        if pgw is not None:
            res["pgw_plans"] = {}
            for spec in specs:
                sql, params = spec["pgw"]
                bound = {k: (p["tasks"][0][1] if v == "@task_uuid" else v) for k, v in params.items()}
                plan = pg_well.explain(pgw, sql, bound)
                res["pgw_plans"][spec["name"]] = plan
                sys.stderr.write(f"\n== EXPLAIN, PostgreSQL done well: {spec['name']}\n{plan}\n")
        floor = []
        for _ in range(30):
            t = time.perf_counter()
            ch.query("SELECT 1")
            floor.append(time.perf_counter() - t)
        res["floor_ms"] = statistics.median(floor[5:]) * 1e3
        sides = Sides(ch, cfg, pg, p["tasks"], pgw)
        res["reports"] = time_reports(sides, specs, args.reps)
        if not args.no_adhoc:
            res["adhoc"] = time_adhoc(ch, pgw, args.adhoc_reps, {"db": "swarmlens", "otel": "otel"})
        if not args.no_query_files:
            res["query_files"] = time_query_files(ch, cfg, p, args.reps)
        if not args.no_pages:
            res["pages"], res["pages_error"] = time_pages(overrides, p, args.reps)
        res["storage"] = ch_storage(ch, "otel", "swarmlens", stats.spans, stats.tasks,
                                    sample_days=None if stats.spans <= 2_000_000 else 10)
        res["pg_storage"] = res.get("pg_seed_storage")
        res["meta"] = {
            "preset": args.preset if not args.tasks else f"{args.preset} ({args.tasks} tasks)",
            "tasks": stats.tasks, "spans": stats.spans, "users": gen.users, "days": generate.DAYS,
            "end": gen.end.isoformat(), "seed": args.seed, "reps": args.reps, "errors": stats.errors,
            "feedback": stats.feedback, "load_seconds": stats.seconds, "insert_seconds": stats.insert_seconds,
            "pg_load_seconds": pg_load, "chdb": f"{chdb.__version__}, engine {ep.engine.version}",
            "postgres": pg_server.version if pg_server and pg is not None else None, "postgres_error": pg_error,
            "otel_db": "otel", "db": "swarmlens",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
                       f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
            "params": {"user": p["user"], "top_user": p["top_user"], "deep_offset": p["deep_offset"]},
        }
    finally:
        if pgw is not None:
            pgw.close()
        if pg is not None:
            pg.close()
        if pg_server is not None:
            pg_server.stop()
        ep.stop()
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return _output(res, args)


def _output(res: dict, args) -> int:
    res.setdefault("notes", [])
    sections = markdown(res)
    print("\n".join(sections.values()))
    if args.write_docs:
        for heading, body in sections.items():
            write_section(args.docs, heading, body)
    agg = [r for r in res["reports"] if r["kind"] == "aggregate" and "x_raw_p50" in r]
    gm = lambda k: statistics.geometric_mean([r[k] for r in agg if k in r]) if any(k in r for r in agg) else None  # noqa: E731
    sys.stderr.write(f"{len(res['reports'])} reports on {res['meta']['tasks']:,} tasks: aggregate reports "
                     f"{_speed(gm('x_pgw_p50'))} against PostgreSQL done well, {_speed(gm('x_pg_p50'))} against the "
                     f"seed's PostgreSQL, {_speed(gm('x_raw_p50'))} against raw spans"
                     f"{'; ' + args.docs + ' updated' if args.write_docs else ''}\n")
    failures = check_failures(res)
    for f in failures:
        sys.stderr.write(f"WRONG ANSWER: {f}\n")
    if failures:
        sys.stderr.write(f"{len(failures)} answers differ beyond their tolerance\n")
        return 1
    return 0



if __name__ == "__main__":
    sys.exit(main())
