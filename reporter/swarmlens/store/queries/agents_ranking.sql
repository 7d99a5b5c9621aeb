-- Agent ranking of a period: tasks, runs, tokens, average and p95 tokens per task (an agent's tokens in
-- a task are the sum of its stretches there; the p95 is interpolated between ranks, as
-- quantileExactInclusive), errors, users. The per-task figures come from agent_tasks (schema 0007:
-- one row per agent, task and day, FINAL adding up a task's partial rows), counted rather than merged
-- from sets of task ids; the distinct users from agent_daily's exact user states (schema 0006).
-- {start}/{end} are midnights UTC (the reporter's periods are whole days): the rollups are per UTC day.
-- {detail} = 0 leaves out the p95 (nan) and the users (0), a third of the work, for a comparison
-- period of which only the averages are shown.
SELECT a.agent AS agent, a.tasks AS tasks, a.runs AS runs, a.tokens AS tokens, a.input_tokens AS input_tokens,
       a.output_tokens AS output_tokens, if(a.tasks > 0, a.tokens / a.tasks, 0) AS avg_tokens_per_task,
       a.p95_tokens_per_task AS p95_tokens_per_task, a.errors AS errors, u.users AS users,
       a.duration_ms AS duration_ms
FROM (
    SELECT t.agent AS agent, count() AS tasks, sum(t.runs) AS runs,
           sum(t.input_tokens) + sum(t.output_tokens) AS tokens, sum(t.input_tokens) AS input_tokens,
           sum(t.output_tokens) AS output_tokens,
           quantileExactInclusiveIf(0.95)(t.input_tokens + t.output_tokens, {detail:UInt8} = 1) AS p95_tokens_per_task,
           sum(t.errors) AS errors, sum(t.duration_ms) AS duration_ms
    FROM {db:Identifier}.agent_tasks AS t FINAL
    WHERE t.day >= toDate({start:DateTime64(3)}, 'UTC') AND t.day < toDate({end:DateTime64(3)}, 'UTC')
    GROUP BY t.agent
) AS a
LEFT JOIN (
    SELECT d.agent AS agent, uniqExactMerge(d.users) AS users
    FROM {db:Identifier}.agent_daily AS d
    WHERE {detail:UInt8} = 1 AND d.day >= toDate({start:DateTime64(3)}, 'UTC') AND d.day < toDate({end:DateTime64(3)}, 'UTC')
    GROUP BY d.agent
) AS u ON u.agent = a.agent
ORDER BY tasks DESC, agent
