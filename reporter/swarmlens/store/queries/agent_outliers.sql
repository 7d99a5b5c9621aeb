-- Tasks in which an agent used more tokens than its own p95 tokens per task in the period. The p95 is
-- interpolated between ranks (quantileExactInclusive), so with few tasks the largest can still stand out.
WITH per_task AS (
    SELECT r.agent AS agent, r.task_id AS task_id, any(r.user_id) AS user_id, min(r.start_time) AS first_start,
           sum(r.input_tokens + r.output_tokens) AS tokens
    FROM {db:Identifier}.agent_runs AS r FINAL
    WHERE r.start_time >= {start:DateTime64(3)} AND r.start_time < {end:DateTime64(3)}
    GROUP BY r.agent, r.task_id
)
SELECT t.agent AS agent, t.task_id AS task_id, t.user_id AS user_id, t.first_start AS start_time, t.tokens AS tokens,
       p.p95 AS p95_tokens_per_task, t.tokens / p.p95 AS times_p95
FROM per_task AS t
INNER JOIN (SELECT agent, quantileExactInclusive(0.95)(tokens) AS p95 FROM per_task GROUP BY agent) AS p ON p.agent = t.agent
WHERE t.tokens > p.p95
ORDER BY times_p95 DESC, tokens DESC, task_id
LIMIT {limit:UInt32}
