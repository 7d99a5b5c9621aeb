-- Agent ranking of a period from agent runs: tasks, runs, tokens, average and p95 tokens per task
-- (an agent's tokens in a task are the sum of its stretches there), errors.
SELECT t.agent AS agent, count() AS tasks, sum(t.runs) AS runs, sum(t.tokens) AS tokens,
       sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens, avg(t.tokens) AS avg_tokens_per_task,
       quantileExactInclusive(0.95)(t.tokens) AS p95_tokens_per_task, sum(t.errors) AS errors, uniqExact(t.user_id) AS users,
       sum(t.duration_ms) AS duration_ms
FROM (
    SELECT r.agent AS agent, r.task_id AS task_id, any(r.user_id) AS user_id, count() AS runs,
           sum(r.input_tokens + r.output_tokens) AS tokens, sum(r.input_tokens) AS input_tokens,
           sum(r.output_tokens) AS output_tokens, countIf(r.status = 'error') AS errors, sum(r.duration_ms) AS duration_ms
    FROM {db:Identifier}.agent_runs AS r FINAL
    WHERE r.start_time >= {start:DateTime64(3)} AND r.start_time < {end:DateTime64(3)}
    GROUP BY r.agent, r.task_id
) AS t
GROUP BY t.agent
ORDER BY tasks DESC, agent
