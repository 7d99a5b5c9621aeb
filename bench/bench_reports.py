"""Report latency at scale, side by side: swarmlens' derived tables (the reporter's own query files)
against the original PostgreSQL design (``task_history``) and against raw ``otel.otel_traces``
alone, on the same generated data in the same run; the reporter's pages through the Flask test
client; and bytes on disk, ClickHouse against PostgreSQL.

    .venv/bin/python bench/bench_reports.py --preset tiny            # CI size, about a minute
    .venv/bin/python bench/bench_reports.py --preset full --write-docs

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
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402
from benchlib import progress, write_section  # noqa: E402
from postgres import SETTINGS as PG_SETTINGS  # noqa: E402
from postgres import PostgresServer, PostgresUnavailable  # noqa: E402

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
SECTIONS = ("## Reports at scale", "## Storage", "## How to reproduce")

# Targets of issue 6, checked in the tables.
TARGET_PAGE_P95_MS = 150
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
         "pg": ("SELECT * FROM task_history WHERE id = %(task)s", {"task": "@task_uuid"}),
         "raw": (f"""SELECT TraceId, SpanId, SpanAttributes, Timestamp, Duration, StatusCode, StatusMessage
                    FROM {{otel:Identifier}}.otel_traces WHERE TraceId = {{task:String}} AND {ROOT} LIMIT 1""",
                 {"task": "@task"})},
    ]


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

    def __init__(self, ch, config, pg, tasks: list[tuple[str, str]]):
        self.ch, self.config, self.pg, self.tasks = ch, config, pg, tasks
        self.i = 0

    def _bind(self, params: dict) -> dict:
        task_id, task_uuid = self.tasks[self.i % len(self.tasks)]
        return {k: task_id if v == "@task" else task_uuid if v == "@task_uuid" else v for k, v in params.items()}

    def derived(self, spec):
        from swarmlens.store.client import query_file

        name, params = spec
        return query_file(self.ch, name, self._bind(params), config=self.config).result_rows

    def raw(self, spec):
        sql, params = spec
        params = self._bind(params)
        params.setdefault("otel", self.config["SWARMLENS_OTEL_DATABASE"])
        params.setdefault("db", self.config["SWARMLENS_DATABASE"])
        return self.ch.query(sql, parameters=params).result_rows

    def postgres(self, spec):
        sql, params = spec
        with self.pg.cursor() as cur:
            cur.execute(sql, self._bind(params))
            return cur.fetchall()


def time_reports(sides: Sides, specs: list[dict], reps: int, warmup: int = 2) -> list[dict]:
    designs = [("derived", sides.derived), ("raw", sides.raw)]
    if sides.pg is not None:
        designs.append(("pg", sides.postgres))
    results = []
    total = len(specs) * (reps + warmup)
    done = 0
    for spec in specs:
        times = {d: [] for d, _ in designs}
        rows, errors = {}, {}
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
            sides.i += 1
            done += 1
            progress(done, total, "timing reports")
        res = {"name": spec["name"], "kind": spec["kind"], "query": spec["derived"][0], "rows": rows,
               "errors": errors}
        for d, _ in designs:
            if d not in errors:
                res[d] = summary(times[d])
        if "derived" not in res:
            results.append(res)
            continue
        for d in ("pg", "raw"):
            if d in res:
                res[f"x_{d}_p50"] = res[d]["p50_ms"] / res["derived"]["p50_ms"]
                res[f"x_{d}_p95"] = res[d]["p95_ms"] / res["derived"]["p95_ms"]
        results.append(res)
    return results


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
        app = create_app({**config_overrides, "TESTING": True})
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


def load_postgres(pg, copy_path: str) -> float:
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
    return time.perf_counter() - started


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


def markdown(res: dict) -> dict[str, str]:
    m = res["meta"]
    pg_note = m["postgres"] if m.get("postgres_error") is None else f"unavailable ({m['postgres_error']})"
    lines = [SECTIONS[0], "",
             f"Preset `{m['preset']}`: {m['tasks']:,} tasks, {m['spans']:,} spans ({m['spans'] / m['tasks']:.1f} per "
             f"task), {m['users']:,} users, {m['days']} days ending {m['end'][:10]}, seed {m['seed']}. "
             f"Every figure below comes from one run of `.venv/bin/python bench/bench_reports.py --preset "
             f"{m['preset']}`; p50 and p95 over {m['reps']} runs per design, the designs taking turns in each run.", "",
             f"- **derived**: the reporter's own query file (`store/queries/NAME.sql`) on swarmlens' derived "
             f"tables, embedded ClickHouse (chDB {m['chdb']}) over HTTP with clickhouse-connect, as the reporter runs it;",
             f"- **PostgreSQL**: the original design, `task_history` ({pg_note}), one row per task, per-agent "
             f"usage in `result` JSONB, btree (user_id, created_at) and (created_at), pg_trgm GIN on "
             f"`input_message`, a `model_prices` table for cost; same report in SQL, psycopg;",
             "- **raw spans**: the same report computed from `otel.otel_traces` alone (no derived table; the "
             "price table joined for cost).", "",
             "× = how many times faster the derived tables are (other design's time / derived time, at p50; "
             "p95 ratio in brackets).", "",
             "| report | derived p50 / p95 ms | PostgreSQL p50 / p95 ms | × vs PostgreSQL | raw spans p50 / p95 ms | "
             "× vs raw spans | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in res["reports"]:
        if "derived" not in r or "raw" not in r:
            lines.append(f"| {r['name']} (`{r['query']}`) | failed: {'; '.join(f'{k}: {v}' for k, v in r['errors'].items())}"
                         " | | | | | not measured |")
            continue
        d, pg, raw = r["derived"], r.get("pg"), r["raw"]
        if r["kind"] == "aggregate":
            ok = (pg is None or r["x_pg_p50"] >= TARGET_VS_PG) and r["x_raw_p50"] >= TARGET_VS_RAW
            target = f"≥ {TARGET_VS_PG}× PG, ≥ {TARGET_VS_RAW}× raw: {'met' if ok else '**missed**'}"
        elif r["kind"] == "point":
            target = f"p95 ≤ {TARGET_POINT_P95_MS} ms: {'met' if d['p95_ms'] <= TARGET_POINT_P95_MS else '**missed**'}"
        else:
            target = f"p95 ≤ {TARGET_SEARCH_P95_MS} ms: {'met' if d['p95_ms'] <= TARGET_SEARCH_P95_MS else '**missed**'}"
        pg_cells = (f"{fmt_ms(pg['p50_ms'])} / {fmt_ms(pg['p95_ms'])}",
                    f"{fmt_x(r['x_pg_p50'])} ({fmt_x(r['x_pg_p95'])})") if pg else ("unavailable", "n/a")
        lines.append(f"| {r['name']} (`{r['query']}`) | {fmt_ms(d['p50_ms'])} / {fmt_ms(d['p95_ms'])} | {pg_cells[0]} | "
                     f"{pg_cells[1]} | {fmt_ms(raw['p50_ms'])} / {fmt_ms(raw['p95_ms'])} | "
                     f"{fmt_x(r['x_raw_p50'])} ({fmt_x(r['x_raw_p95'])}) | {target} |")
    agg = [r for r in res["reports"] if r["kind"] == "aggregate" and "x_raw_p50" in r]
    if agg:
        gm = lambda xs: statistics.geometric_mean(xs) if xs else None  # noqa: E731
        lines += ["", f"Aggregate reports, geometric mean of the p50 ratios: "
                      f"{fmt_x(gm([r['x_pg_p50'] for r in agg if 'x_pg_p50' in r]))} faster than PostgreSQL, "
                      f"{fmt_x(gm([r['x_raw_p50'] for r in agg]))} faster than raw spans."]
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
    derived_bytes = sum(t["bytes"] for t in s["tables"] if not t["table"].startswith(m["otel_db"] + "."))
    aux = sum(t["bytes"] for t in s["tables"] if t["table"].startswith(m["otel_db"] + ".") and t is not otel)
    lines = [SECTIONS[1], "",
             f"Bytes on disk after the `{m['preset']}` load ({m['tasks']:,} tasks, {m['spans']:,} spans), after "
             "merges (derived tables optimized, as background merges leave them; PostgreSQL after VACUUM ANALYZE).", "",
             "| store | bytes | per span | per task |", "|---|---:|---:|---:|"]
    if otel:
        lines.append(f"| ClickHouse `otel_traces` (raw spans, with task input/output) | {fmt_bytes(otel['bytes'])} | "
                     f"{otel['bytes'] / m['spans']:.1f} | {otel['bytes'] / m['tasks']:.0f} |")
    lines.append(f"| ClickHouse `otel_traces_trace_id_ts` | {fmt_bytes(aux)} | {aux / m['spans']:.1f} | "
                 f"{aux / m['tasks']:.0f} |")
    lines.append(f"| ClickHouse derived tables and rollups (all of `{m['db']}`) | {fmt_bytes(derived_bytes)} | "
                 f"{derived_bytes / m['spans']:.1f} | {derived_bytes / m['tasks']:.0f} |")
    total = (otel["bytes"] if otel else 0) + aux + derived_bytes
    lines.append(f"| ClickHouse, everything | {fmt_bytes(total)} | {total / m['spans']:.1f} | {total / m['tasks']:.0f} |")
    if res.get("pg_storage"):
        p = res["pg_storage"]
        lines.append(f"| PostgreSQL `task_history` (pg_total_relation_size: heap {fmt_bytes(p['heap'])}, TOAST "
                     f"{fmt_bytes(p['toast'])}, indexes {fmt_bytes(p['indexes'])}) | {fmt_bytes(p['total'])} | "
                     f"{p['total'] / m['spans']:.1f} | {p['total'] / m['tasks']:.0f} |")
    else:
        lines.append("| PostgreSQL `task_history` | unavailable | | |")
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
             "```", ".venv/bin/python bench/run_all.py --preset full     # about 25 minutes at 1M tasks",
             ".venv/bin/python bench/run_all.py --preset tiny     # CI size, the same code paths", "```", "",
             "or only the sections above:", "", "```",
             ".venv/bin/python bench/bench_reports.py --preset full --write-docs", "```", "",
             "Presets: `tiny` 2k tasks, `small` 50k, `full` 1M (about 9.2M spans); `--seed` (default 42) and "
             "`--end` (default today, UTC) make the data repeatable. The generator alone: "
             "`.venv/bin/python bench/generate.py --preset small --url http://127.0.0.1:8123 --migrate`.",
             f"Load time of this run: ClickHouse {m['load_seconds']:.0f} s for {m['spans']:,} spans "
             f"({m['spans'] / m['load_seconds']:,.0f} spans/s through HTTP, views on, generation included)"
             + (f", PostgreSQL COPY and indexes {m['pg_load_seconds']:.0f} s" if m.get("pg_load_seconds") else "") + "."]
    reproduce_md = "\n".join(lines) + "\n"
    return {SECTIONS[0]: reports_md, SECTIONS[1]: storage_md, SECTIONS[2]: reproduce_md}


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
        return _output(res, args)
    if args.reps < 20:
        ap.error("--reps must be at least 20 (p95 needs them)")

    import clickhouse_connect
    import chdb

    from swarmlens import config as config_mod
    from swarmlens.embedded.server import EmbeddedClickHouse
    from swarmlens.store.migrate import migrate_from_config

    n_tasks = args.tasks or generate.PRESETS[args.preset]
    work = args.work_dir or tempfile.mkdtemp(prefix="swarmlens-bench-reports-")
    os.makedirs(work, exist_ok=True)
    ep = EmbeddedClickHouse(os.path.join(work, "clickhouse"), port=0).start()
    pg_server = pg = None
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
            pg_load = load_postgres(pg, copy_path)
            n = pg.execute("SELECT count(*) FROM task_history").fetchone()[0]
            if n != stats.tasks:
                raise SystemExit(f"PostgreSQL has {n} tasks, generated {stats.tasks}")
            os.remove(copy_path)
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
        sides = Sides(ch, cfg, pg, p["tasks"])
        res["reports"] = time_reports(sides, specs, args.reps)
        res["query_files"] = time_query_files(ch, cfg, p, args.reps)
        if not args.no_pages:
            res["pages"], res["pages_error"] = time_pages(overrides, p, args.reps)
        res["storage"] = ch_storage(ch, "otel", "swarmlens", stats.spans, stats.tasks,
                                    sample_days=None if stats.spans <= 2_000_000 else 10)
        res["pg_storage"] = pg_storage(pg) if pg is not None else None
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
                     f"{fmt_x(gm('x_pg_p50'))} faster than PostgreSQL, {fmt_x(gm('x_raw_p50'))} faster than raw spans"
                     f"{'; ' + args.docs + ' updated' if args.write_docs else ''}\n")
    return 0



if __name__ == "__main__":
    sys.exit(main())
