"""Ad-hoc analyst questions that no rollup answers, each written once against swarmlens' tables
(derived ``tasks`` / ``agent_runs``, or raw ``otel_traces`` where no derived table keeps the
field) and once against the PostgreSQL design done well (``task_history`` and its JSONB, the
summary tables of pg_well.py where they help), both over all 90 days of history.

Every question's answer is compared across the two (crosscheck.py); ``tol`` is the relative
difference allowed on each number, 1e-9 unless the question states why (see ``why``).
Quantiles are interpolated on both sides (quantileExactInclusive, percentile_cont).
"""

from __future__ import annotations

RUNS = "task_history h CROSS JOIN LATERAL jsonb_array_elements(h.result->'agent_runs') WITH ORDINALITY AS r(run, ord)"
RIN, ROUT = "(r.run->>'input_tokens')::bigint", "(r.run->>'output_tokens')::bigint"
PRICES_CH = "(SELECT model, toFloat64(usd_per_1m_input) AS pi, toFloat64(usd_per_1m_output) AS po FROM {db:Identifier}.model_prices FINAL)"

QUERIES = [
    {"name": "p95 tokens per agent run, per agent, model and week",
     "ch": """SELECT agent, model, toMonday(start_time) AS week, count() AS runs,
                     quantileExactInclusive(0.95)(input_tokens + output_tokens) AS p95
              FROM {db:Identifier}.agent_runs FINAL GROUP BY agent, model, week ORDER BY agent, model, week""",
     "pg": f"""SELECT r.run->>'agent', r.run->>'model', date_trunc('week', h.created_at)::date, count(*),
                     percentile_cont(0.95) WITHIN GROUP (ORDER BY {RIN} + {ROUT})
              FROM {RUNS} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
     "keys": 3, "tol": 0.02,
     "why": "a run counts on its own day in swarmlens and on its task's day in PostgreSQL: runs of a task that "
            "straddles Sunday midnight land in different weeks"},
    {"name": "tasks with more than 3 handoffs, by path (top 20)",
     "ch": """SELECT path, count() AS tasks, sum(tokens) AS tokens FROM (
                  SELECT task_id, arrayStringConcat(arrayMap(x -> x.2, arraySort(groupArray((start_time, agent)))), ' > ') AS path,
                         sum(input_tokens + output_tokens) AS tokens
                  FROM {db:Identifier}.agent_runs FINAL
                  WHERE task_id IN (SELECT task_id FROM {db:Identifier}.tasks FINAL WHERE handoffs > 3)
                  GROUP BY task_id)
              GROUP BY path ORDER BY tasks DESC, path LIMIT 20""",
     "pg": f"""SELECT path, count(*) AS tasks, sum(tokens) FROM (
                  SELECT h.id, string_agg(r.run->>'agent', ' > ' ORDER BY r.ord) AS path, sum({RIN} + {ROUT}) AS tokens
                  FROM {RUNS} WHERE (h.result->>'handoffs')::int > 3 GROUP BY h.id) t
              GROUP BY path ORDER BY tasks DESC, path LIMIT 20""",
     "keys": 1},
    {"name": "error rate per tool (tasks using the tool that failed)",
     "ch": """SELECT SpanAttributes['gen_ai.tool.name'] AS tool, count() AS calls, uniqExact(TraceId) AS tasks,
                     uniqExactIf(TraceId, TraceId IN (SELECT task_id FROM {db:Identifier}.tasks FINAL WHERE status = 'error')) AS failed
              FROM {otel:Identifier}.otel_traces
              WHERE startsWith(SpanName, 'execute_tool') AND NOT startsWith(tool, 'transfer_to_')
              GROUP BY tool ORDER BY tool""",
     "pg": """SELECT t, count(*), count(DISTINCT h.id), count(DISTINCT h.id) FILTER (WHERE h.result->>'status' = 'error')
              FROM task_history h CROSS JOIN LATERAL jsonb_array_elements_text(h.result->'tool_calls') t
              GROUP BY t ORDER BY t""",
     "keys": 1},
    {"name": "token quantiles per user cohort (week of first task)",
     "ch": """SELECT c.cohort AS cohort, count() AS tasks, uniqExact(t.user_id) AS users,
                     quantileExactInclusive(0.5)(t.total_tokens), quantileExactInclusive(0.9)(t.total_tokens),
                     quantileExactInclusive(0.99)(t.total_tokens)
              FROM {db:Identifier}.tasks AS t FINAL
              JOIN (SELECT user_id, toMonday(min(start_time)) AS cohort FROM {db:Identifier}.tasks FINAL GROUP BY user_id) AS c
                ON c.user_id = t.user_id
              GROUP BY cohort ORDER BY cohort""",
     "pg": """WITH c AS (SELECT user_id, date_trunc('week', min(created_at))::date AS cohort FROM task_history GROUP BY user_id)
              SELECT c.cohort, count(*), count(DISTINCT h.user_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY h.total_tokens),
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY h.total_tokens),
                     percentile_cont(0.99) WITHIN GROUP (ORDER BY h.total_tokens)
              FROM task_history h JOIN c USING (user_id) GROUP BY c.cohort ORDER BY c.cohort""",
     "keys": 1},
    {"name": "cost of the longest 1% of tasks",
     "ch": f"""SELECT uniqExact(r.task_id) AS tasks, sum(r.input_tokens + r.output_tokens) AS tokens,
                     sum(r.input_tokens * p.pi + r.output_tokens * p.po) / 1e6 AS cost_usd
              FROM {{db:Identifier}}.agent_runs AS r FINAL LEFT JOIN {PRICES_CH} AS p ON p.model = r.model
              WHERE r.task_id IN (SELECT task_id FROM {{db:Identifier}}.tasks FINAL
                                  WHERE duration_ms >= (SELECT quantileExactInclusive(0.99)(duration_ms)
                                                        FROM {{db:Identifier}}.tasks FINAL))""",
     "pg": f"""SELECT count(DISTINCT h.id), sum({RIN} + {ROUT}),
                     sum({RIN} * p.usd_per_1m_input + {ROUT} * p.usd_per_1m_output) / 1e6
              FROM {RUNS} LEFT JOIN model_prices p ON p.model = r.run->>'model'
              WHERE (h.result->>'duration_ms')::bigint >= (SELECT percentile_cont(0.99) WITHIN GROUP
                                                           (ORDER BY (result->>'duration_ms')::bigint) FROM task_history)""",
     "keys": 0},
    {"name": "chat calls per agent turn, per agent",
     "ch": """SELECT agent, count() AS runs, sum(turns) AS calls, countIf(turns >= 3) AS runs_3_plus
              FROM {db:Identifier}.agent_runs FINAL GROUP BY agent ORDER BY agent""",
     "pg": """SELECT r.run->>'agent', count(*), sum((r.run->>'turns')::int), count(*) FILTER (WHERE (r.run->>'turns')::int >= 3)
              FROM task_history h CROSS JOIN LATERAL jsonb_array_elements(h.result->'agent_runs') WITH ORDINALITY AS r(run, ord)
              GROUP BY 1 ORDER BY 1""",
     "keys": 1},
    {"name": "load by hour of day, weekdays and weekends",
     "ch": """SELECT toHour(start_time) AS hour, toDayOfWeek(start_time) >= 6 AS weekend, count(), sum(total_tokens),
                     countIf(status = 'error')
              FROM {db:Identifier}.tasks FINAL GROUP BY hour, weekend ORDER BY hour, weekend""",
     "pg": """SELECT extract(hour FROM created_at)::int, extract(isodow FROM created_at) >= 6, count(*), sum(total_tokens),
                     count(*) FILTER (WHERE result->>'status' = 'error')
              FROM task_history GROUP BY 1, 2 ORDER BY 1, 2""",
     "keys": 2},
    {"name": "failed runs by model and error type",
     "ch": """SELECT model, error_type, count() FROM {db:Identifier}.agent_runs FINAL WHERE status = 'error'
              GROUP BY model, error_type ORDER BY model, error_type""",
     "pg": f"""SELECT r.run->>'model', h.result->>'error_type', count(*) FROM {RUNS} WHERE r.run->>'status' = 'error'
              GROUP BY 1, 2 ORDER BY 1, 2""",
     "keys": 2},
    {"name": "start agent by final agent: tasks and mean tokens",
     "ch": """SELECT start_agent, final_agent, count() AS tasks, avg(total_tokens) FROM {db:Identifier}.tasks FINAL
              GROUP BY start_agent, final_agent ORDER BY start_agent, final_agent""",
     "pg": """SELECT result->'agent_runs'->0->>'agent', result->>'final_agent', count(*), avg(total_tokens) FROM task_history
              GROUP BY 1, 2 ORDER BY 1, 2""",
     "keys": 2},
    {"name": "task duration p50/p95 by number of handoffs",
     "ch": """SELECT handoffs, count(), quantileExactInclusive(0.5)(duration_ms), quantileExactInclusive(0.95)(duration_ms)
              FROM {db:Identifier}.tasks FINAL GROUP BY handoffs ORDER BY handoffs""",
     "pg": """SELECT (result->>'handoffs')::int, count(*),
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY (result->>'duration_ms')::bigint),
                     percentile_cont(0.95) WITHIN GROUP (ORDER BY (result->>'duration_ms')::bigint)
              FROM task_history GROUP BY 1 ORDER BY 1""",
     "keys": 1},
    {"name": "share of tokens from the 100 heaviest users, per month",
     "ch": """SELECT month, sumIf(tokens, rn <= 100) / sum(tokens) AS top100_share, uniqExact(user_id) AS users FROM (
                  SELECT toStartOfMonth(start_time) AS month, user_id, sum(total_tokens) AS tokens,
                         row_number() OVER (PARTITION BY month ORDER BY tokens DESC, user_id) AS rn
                  FROM {db:Identifier}.tasks FINAL GROUP BY month, user_id)
              GROUP BY month ORDER BY month""",
     "pg": """SELECT month, sum(tokens) FILTER (WHERE rn <= 100)::float8 / sum(tokens), count(*) FROM (
                  SELECT date_trunc('month', created_at)::date AS month, user_id, sum(total_tokens) AS tokens,
                         row_number() OVER (PARTITION BY date_trunc('month', created_at)::date
                                            ORDER BY sum(total_tokens) DESC, user_id) AS rn
                  FROM task_history GROUP BY 1, 2) t
              GROUP BY month ORDER BY month""",
     "keys": 1},
]
