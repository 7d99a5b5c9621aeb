-- Tasks in which an agent used more tokens than its own p95 tokens per task in the period: the p95
-- the ranking shows (agents_ranking: interpolated between ranks, so with few tasks the largest can
-- still stand out), over the same rows of agent_tasks (schema 0007), whose FINAL adds up a task's
-- partial rows. {start}/{end} are midnights UTC (whole days of the rollup).
SELECT t.agent AS agent, t.task_id AS task_id, t.user_id AS user_id, t.first_start AS start_time, t.tokens AS tokens,
       p.p95 AS p95_tokens_per_task, t.tokens / p.p95 AS times_p95
FROM (
    SELECT a.agent AS agent, a.task_id AS task_id, a.user_id AS user_id, a.first_start AS first_start,
           a.input_tokens + a.output_tokens AS tokens
    FROM {db:Identifier}.agent_tasks AS a FINAL
    WHERE a.day >= toDate({start:DateTime64(3)}, 'UTC') AND a.day < toDate({end:DateTime64(3)}, 'UTC')
) AS t
INNER JOIN (
    SELECT a.agent AS agent, quantileExactInclusive(0.95)(a.input_tokens + a.output_tokens) AS p95
    FROM {db:Identifier}.agent_tasks AS a FINAL
    WHERE a.day >= toDate({start:DateTime64(3)}, 'UTC') AND a.day < toDate({end:DateTime64(3)}, 'UTC')
    GROUP BY a.agent
) AS p ON p.agent = t.agent
WHERE t.tokens > p.p95
ORDER BY times_p95 DESC, tokens DESC, task_id
LIMIT {limit:UInt32}
