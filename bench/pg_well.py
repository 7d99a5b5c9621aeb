"""The original PostgreSQL design done well: what a competent PostgreSQL engineer would add to the
seed's ``task_history`` table before comparing it with anything.

- **Summary tables** equivalent to swarmlens' rollups (``SUMMARY_DDL``), kept current by a
  statement-level ``AFTER INSERT`` trigger with a transition table: every INSERT (one task, as the
  app writes it, or a batch) runs ``ROLLUP_SQL`` over the inserted rows as upserts
  (``INSERT ... ON CONFLICT DO UPDATE``). The same statements, run over the whole table, are the
  backfill after the bulk load, so the cross-check verifies the trigger's arithmetic too.
  Like swarmlens' rollups they are per UTC day; unlike them, an agent run counts on its task's day
  (the JSONB keeps no start time per run).
- **Full-text search** with swarmlens' semantics: input and output each get a stored ``tsvector``
  of their alphanumeric words, lower-cased (``'simple'`` configuration: no stemming, no stop
  words), each with a GIN index; a query matches when all its words occur in the input or all in
  the output, as ``hasAllTokens(input, q) OR hasAllTokens(output, q)`` does.
- **Per-query plans**: the connection is opened with ``prepare_threshold=None`` and every report
  is written without the ``(%(p)s = '' OR col = %(p)s)`` pattern (one SQL text per variant), so no
  generic plan is ever used; ``explain()`` prints each report's plan in the bench log.
"""

from __future__ import annotations

import time

# tsvector of the alphanumeric words of a text: the same tokens as ClickHouse's splitByNonAlpha +
# lower(), which swarmlens' text indexes use.
def _words(expr: str) -> str:
    return f"to_tsvector('simple'::regconfig, regexp_replace(coalesce({expr}, ''), '[^[:alnum:]]+', ' ', 'g'))"


SEARCH_DDL = f"""
ALTER TABLE task_history
    ADD COLUMN input_tsv tsvector GENERATED ALWAYS AS ({_words('input_message')}) STORED,
    ADD COLUMN output_tsv tsvector GENERATED ALWAYS AS ({_words("result->>'output'")}) STORED;
CREATE INDEX task_history_input_tsv ON task_history USING gin (input_tsv);
CREATE INDEX task_history_output_tsv ON task_history USING gin (output_tsv);
"""
# The query side of the same tokenisation: all the words of the query (AND).
TSQUERY = "plainto_tsquery('simple'::regconfig, regexp_replace(%(q)s, '[^[:alnum:]]+', ' ', 'g'))"

SUMMARY_DDL = """
CREATE TABLE tasks_daily (day date PRIMARY KEY, tasks bigint NOT NULL, input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL, errors bigint NOT NULL, duration_ms bigint NOT NULL);
CREATE TABLE tasks_daily_user (day date, user_id integer, tasks bigint NOT NULL, input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL, errors bigint NOT NULL, PRIMARY KEY (day, user_id));
CREATE TABLE usage_daily_user (day date, user_id integer, model text, input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL, PRIMARY KEY (day, user_id, model));
CREATE TABLE agent_model_daily (day date, agent text, model text, runs bigint NOT NULL, calls bigint NOT NULL,
    input_tokens bigint NOT NULL, output_tokens bigint NOT NULL, errors bigint NOT NULL,
    PRIMARY KEY (day, agent, model));
CREATE TABLE agent_tasks (day date, agent text, task_id uuid, user_id integer NOT NULL, runs integer NOT NULL,
    input_tokens bigint NOT NULL, output_tokens bigint NOT NULL, errors integer NOT NULL,
    duration_ms bigint NOT NULL, PRIMARY KEY (day, agent, task_id));
CREATE TABLE handoffs_daily (day date, from_agent text, to_agent text, handoffs bigint NOT NULL,
    tasks bigint NOT NULL, PRIMARY KEY (day, from_agent, to_agent));
"""
SUMMARY_TABLES = ("tasks_daily", "tasks_daily_user", "usage_daily_user", "agent_model_daily", "agent_tasks",
                  "handoffs_daily")

_RUNS = "{src} h CROSS JOIN LATERAL jsonb_array_elements(h.result->'agent_runs') r"
_DAY = "(h.created_at)::date"

# One upsert per summary table over the rows of {src}: the whole table (backfill) or the trigger's
# transition table (the rows of one INSERT).
ROLLUP_SQL = [
    f"""INSERT INTO tasks_daily
        SELECT {_DAY}, count(*), sum(h.prompt_tokens), sum(h.completion_tokens),
               count(*) FILTER (WHERE h.result->>'status' = 'error'), sum((h.result->>'duration_ms')::bigint)
        FROM {{src}} h GROUP BY 1
        ON CONFLICT (day) DO UPDATE SET tasks = tasks_daily.tasks + EXCLUDED.tasks,
            input_tokens = tasks_daily.input_tokens + EXCLUDED.input_tokens,
            output_tokens = tasks_daily.output_tokens + EXCLUDED.output_tokens,
            errors = tasks_daily.errors + EXCLUDED.errors, duration_ms = tasks_daily.duration_ms + EXCLUDED.duration_ms""",
    f"""INSERT INTO tasks_daily_user
        SELECT {_DAY}, h.user_id, count(*), sum(h.prompt_tokens), sum(h.completion_tokens),
               count(*) FILTER (WHERE h.result->>'status' = 'error')
        FROM {{src}} h GROUP BY 1, 2
        ON CONFLICT (day, user_id) DO UPDATE SET tasks = tasks_daily_user.tasks + EXCLUDED.tasks,
            input_tokens = tasks_daily_user.input_tokens + EXCLUDED.input_tokens,
            output_tokens = tasks_daily_user.output_tokens + EXCLUDED.output_tokens,
            errors = tasks_daily_user.errors + EXCLUDED.errors""",
    f"""INSERT INTO usage_daily_user
        SELECT {_DAY}, h.user_id, r->>'model', sum((r->>'input_tokens')::bigint), sum((r->>'output_tokens')::bigint)
        FROM {_RUNS} GROUP BY 1, 2, 3
        ON CONFLICT (day, user_id, model) DO UPDATE SET
            input_tokens = usage_daily_user.input_tokens + EXCLUDED.input_tokens,
            output_tokens = usage_daily_user.output_tokens + EXCLUDED.output_tokens""",
    f"""INSERT INTO agent_model_daily
        SELECT {_DAY}, r->>'agent', r->>'model', count(*), sum((r->>'turns')::bigint),
               sum((r->>'input_tokens')::bigint), sum((r->>'output_tokens')::bigint),
               count(*) FILTER (WHERE r->>'status' = 'error')
        FROM {_RUNS} GROUP BY 1, 2, 3
        ON CONFLICT (day, agent, model) DO UPDATE SET runs = agent_model_daily.runs + EXCLUDED.runs,
            calls = agent_model_daily.calls + EXCLUDED.calls,
            input_tokens = agent_model_daily.input_tokens + EXCLUDED.input_tokens,
            output_tokens = agent_model_daily.output_tokens + EXCLUDED.output_tokens,
            errors = agent_model_daily.errors + EXCLUDED.errors""",
    f"""INSERT INTO agent_tasks
        SELECT {_DAY}, r->>'agent', h.id, min(h.user_id), count(*), sum((r->>'input_tokens')::bigint),
               sum((r->>'output_tokens')::bigint), count(*) FILTER (WHERE r->>'status' = 'error'),
               sum((r->>'duration_ms')::bigint)
        FROM {_RUNS} GROUP BY 1, 2, 3
        ON CONFLICT (day, agent, task_id) DO UPDATE SET runs = agent_tasks.runs + EXCLUDED.runs,
            input_tokens = agent_tasks.input_tokens + EXCLUDED.input_tokens,
            output_tokens = agent_tasks.output_tokens + EXCLUDED.output_tokens,
            errors = agent_tasks.errors + EXCLUDED.errors, duration_ms = agent_tasks.duration_ms + EXCLUDED.duration_ms""",
    f"""INSERT INTO handoffs_daily
        SELECT day, from_agent, to_agent, sum(n), count(*)
        FROM (SELECT {_DAY} AS day, h.id, r->>'handoff_from' AS from_agent, r->>'agent' AS to_agent, count(*) AS n
              FROM {_RUNS} WHERE r->>'handoff_from' <> '' GROUP BY 1, 2, 3, 4) per_task
        GROUP BY 1, 2, 3
        ON CONFLICT (day, from_agent, to_agent) DO UPDATE SET handoffs = handoffs_daily.handoffs + EXCLUDED.handoffs,
            tasks = handoffs_daily.tasks + EXCLUDED.tasks""",
]

TRIGGER_DDL = (
    "CREATE FUNCTION task_history_rollups() RETURNS trigger LANGUAGE plpgsql AS $fn$\nBEGIN\n"
    + "".join("    " + s.format(src="new_rows") + ";\n" for s in ROLLUP_SQL)
    + "    RETURN NULL;\nEND\n$fn$;\n"
    "CREATE TRIGGER task_history_rollups AFTER INSERT ON task_history REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_history_rollups();\n")

INSERT_TASK = ("INSERT INTO task_history (id, user_id, input_message, agents, prompt_tokens, completion_tokens, "
               "total_tokens, result, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")


def build(pg) -> dict:
    """After the bulk load and the seed's indexes: adds search, the summary tables (backfilled with
    the trigger's own statements) and the trigger. Returns the seconds each step took."""
    out = {}
    with pg.cursor() as cur:
        t = time.perf_counter()
        cur.execute(SEARCH_DDL)
        out["search_columns_and_indexes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        cur.execute(SUMMARY_DDL)
        for stmt in ROLLUP_SQL:
            cur.execute(stmt.format(src="task_history"))
        out["summary_backfill_s"] = time.perf_counter() - t
        cur.execute(TRIGGER_DDL)
    pg.commit()
    for t in ("task_history", *SUMMARY_TABLES):
        pg.execute(f"VACUUM ANALYZE {t}")
    return out


def parse_copy_line(line: str) -> tuple:
    """A COPY text line of generate.py back into the INSERT's values (the seed's write path)."""
    from psycopg.types.json import Jsonb
    import json

    def unescape(s: str) -> str:
        return s.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r").replace("\\\\", "\\")

    f = line.rstrip("\n").split("\t")
    agents = [a.strip('"') for a in f[3][1:-1].split(",")] if f[3] != "{}" else []
    return (f[0], int(f[1]), unescape(f[2]), agents, int(f[4]), int(f[5]), int(f[6]),
            Jsonb(json.loads(unescape(f[7]))), f[8])


def write_path(pg, rows: list[tuple], *, trigger: bool) -> float:
    """The app's write path: one INSERT per task, each its own transaction (autocommit), as the seed's
    app stores a task when it ends. Returns tasks/s."""
    pg.execute(f"ALTER TABLE task_history {'ENABLE' if trigger else 'DISABLE'} TRIGGER task_history_rollups")
    pg.commit()
    autocommit = pg.autocommit
    pg.autocommit = True
    try:
        t = time.perf_counter()
        with pg.cursor() as cur:
            for r in rows:
                cur.execute(INSERT_TASK, r)
        elapsed = time.perf_counter() - t
    finally:
        pg.autocommit = autocommit
    return len(rows) / elapsed


def measure_ingest(pg, lines: list[str]) -> dict:
    """Tasks/s of the write path over ``lines`` (tasks not yet loaded): first without the summary
    tables' trigger (rows then deleted again), then with it (rows kept, so every report covers
    them and the cross-check verifies what the trigger wrote)."""
    rows = [parse_copy_line(x) for x in lines]
    plain = write_path(pg, rows, trigger=False)
    with pg.cursor() as cur:
        cur.execute("DELETE FROM task_history WHERE id = ANY(%s::uuid[])", ([r[0] for r in rows],))
    pg.commit()
    autocommit = pg.autocommit
    pg.autocommit = True
    pg.execute("VACUUM task_history")
    pg.autocommit = autocommit
    with_trigger = write_path(pg, rows, trigger=True)
    pg.autocommit = True
    for t in ("task_history", *SUMMARY_TABLES):
        pg.execute(f"VACUUM ANALYZE {t}")
    return {"tasks": len(rows), "without_summaries_tasks_per_s": plain, "with_summaries_tasks_per_s": with_trigger}


def storage(pg) -> dict:
    """Bytes of every relation of the design (heap, TOAST, indexes)."""
    out = {}
    with pg.cursor() as cur:
        for t in ("task_history", *SUMMARY_TABLES, "model_prices"):
            cur.execute("SELECT pg_total_relation_size(%s::regclass), pg_indexes_size(%s::regclass)", (t, t))
            total, idx = cur.fetchone()
            out[t] = {"total": total, "indexes": idx}
        cur.execute("""SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index
                       WHERE indrelid = 'task_history'::regclass""")
        out["task_history_indexes"] = dict(cur.fetchall())
    return out


# ---------------------------------------------------------------------------------------------
# The reports, done well. Parameters: dates for the day-based summary tables, naive UTC timestamps
# for task_history (created_at is TIMESTAMP in UTC).

D_RANGE = "day >= %(start)s AND day < %(end)s"
PRICES = "LEFT JOIN model_prices p ON p.model = d.model"
COST = "(d.input_tokens * p.usd_per_1m_input + d.output_tokens * p.usd_per_1m_output) / 1e6"

USERS = f"""
WITH t AS (SELECT user_id, sum(tasks) AS tasks, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                  sum(input_tokens + output_tokens) AS tokens, sum(errors) AS errors
           FROM tasks_daily_user WHERE {D_RANGE} GROUP BY user_id),
     c AS (SELECT d.user_id, sum({COST}) AS cost_usd FROM usage_daily_user d {PRICES}
           WHERE d.{D_RANGE} GROUP BY d.user_id)
SELECT t.user_id, t.tasks, t.input_tokens, t.output_tokens, t.tokens, t.errors, c.cost_usd
FROM t LEFT JOIN c USING (user_id) ORDER BY tokens DESC, user_id LIMIT %(limit)s"""

TOTALS = f"""
SELECT sum(tasks), sum(input_tokens), sum(output_tokens), sum(input_tokens + output_tokens), sum(errors),
       sum(duration_ms), (SELECT count(DISTINCT user_id) FROM tasks_daily_user WHERE {D_RANGE})
FROM tasks_daily WHERE {D_RANGE}"""

DAILY = f"""
SELECT d.day, d.tasks, d.input_tokens + d.output_tokens, d.errors, u.users
FROM tasks_daily d JOIN (SELECT day, count(*) AS users FROM tasks_daily_user WHERE {D_RANGE} GROUP BY day) u USING (day)
WHERE d.{D_RANGE} ORDER BY d.day"""

RANKING = f"""
SELECT agent, count(*) AS tasks, sum(runs), sum(input_tokens + output_tokens), sum(input_tokens), sum(output_tokens),
       avg(input_tokens + output_tokens), percentile_cont(0.95) WITHIN GROUP (ORDER BY input_tokens + output_tokens),
       sum(errors), count(DISTINCT user_id), sum(duration_ms)
FROM agent_tasks WHERE {D_RANGE} GROUP BY agent ORDER BY tasks DESC, agent"""

BY_AGENT = f"""
WITH a AS (SELECT d.agent, sum(d.runs) AS runs, sum(d.input_tokens) AS i, sum(d.output_tokens) AS o,
                  sum(d.input_tokens + d.output_tokens) AS tokens, sum(d.errors) AS errors, sum({COST}) AS cost_usd
           FROM agent_model_daily d {PRICES} WHERE d.{D_RANGE} GROUP BY d.agent),
     u AS (SELECT agent, count(DISTINCT user_id) AS users FROM agent_tasks WHERE {D_RANGE} GROUP BY agent)
SELECT a.agent, a.runs, a.i, a.o, a.tokens, a.errors, u.users, a.cost_usd
FROM a JOIN u USING (agent) ORDER BY tokens DESC, agent"""

BY_MODEL = f"""
SELECT d.model, sum(d.calls), sum(d.input_tokens), sum(d.output_tokens), sum(d.input_tokens + d.output_tokens) AS tokens,
       sum(d.errors), sum({COST})
FROM agent_model_daily d {PRICES} WHERE d.{D_RANGE} GROUP BY d.model ORDER BY tokens DESC, d.model"""

HANDOFFS = f"""
SELECT from_agent, to_agent, sum(handoffs) AS handoffs, sum(tasks) FROM handoffs_daily WHERE {D_RANGE}
GROUP BY 1, 2 ORDER BY handoffs DESC, 1, 2"""

HISTORY_COLS = "id, user_id, input_message, agents, prompt_tokens, completion_tokens, total_tokens, result, created_at"
HISTORY_FIRST = f"SELECT {HISTORY_COLS} FROM task_history WHERE user_id = %(user)s ORDER BY created_at DESC, id DESC LIMIT 50"
HISTORY_AFTER = (f"SELECT {HISTORY_COLS} FROM task_history WHERE user_id = %(user)s "
                 "AND (created_at, id) < (%(cursor_time)s, %(cursor_id)s) ORDER BY created_at DESC, id DESC LIMIT 50")
SEARCH_COLS = "id, user_id, created_at, input_message, agents, total_tokens, result->>'output', result->>'status'"
SEARCH_ALL = (f"SELECT {SEARCH_COLS} FROM task_history WHERE created_at >= %(start)s AND created_at < %(end)s "
              f"AND (input_tsv @@ {TSQUERY} OR output_tsv @@ {TSQUERY}) ORDER BY created_at DESC, id DESC LIMIT 50")
SEARCH_USER = (f"SELECT {SEARCH_COLS} FROM task_history WHERE user_id = %(user)s AND created_at >= %(start)s "
               f"AND created_at < %(end)s AND (input_tsv @@ {TSQUERY} OR output_tsv @@ {TSQUERY}) "
               "ORDER BY created_at DESC, id DESC LIMIT 50")
TASK = f"SELECT {HISTORY_COLS} FROM task_history WHERE id = %(task)s"


def explain(pg, sql: str, params: dict) -> str:
    with pg.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + sql, params)
        return "\n".join(r[0] for r in cur.fetchall())
