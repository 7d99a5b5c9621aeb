-- Tasks in which an agent used more tokens than its own p95 tokens per task in the period. The p95 is
-- the one the ranking shows (from agent_daily, interpolated between ranks, so with few tasks the
-- largest can still stand out); the tasks' own sums come from agent_runs, read once. {start}/{end}
-- are midnights UTC (whole days of the rollup).
SELECT t.agent AS agent, t.task_id AS task_id, t.user_id AS user_id, t.first_start AS start_time, t.tokens AS tokens,
       p.p95 AS p95_tokens_per_task, t.tokens / p.p95 AS times_p95
FROM (
    SELECT r.agent AS agent, r.task_id AS task_id, any(r.user_id) AS user_id, min(r.start_time) AS first_start,
           sum(r.input_tokens + r.output_tokens) AS tokens
    FROM {db:Identifier}.agent_runs AS r FINAL
    WHERE r.start_time >= {start:DateTime64(3)} AND r.start_time < {end:DateTime64(3)}
    GROUP BY r.agent, r.task_id
) AS t
INNER JOIN (
    SELECT d.agent AS agent, quantileExactInclusiveMerge(0.95)(d.tokens_per_task) AS p95
    FROM {db:Identifier}.agent_daily AS d
    WHERE d.day >= toDate({start:DateTime64(3)}, 'UTC') AND d.day < toDate({end:DateTime64(3)}, 'UTC')
    GROUP BY d.agent
) AS p ON p.agent = t.agent
WHERE t.tokens > p.p95
ORDER BY times_p95 DESC, tokens DESC, task_id
LIMIT {limit:UInt32}
