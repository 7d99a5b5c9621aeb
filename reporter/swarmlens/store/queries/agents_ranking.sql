-- Agent ranking of a period from the agent_daily rollup (agent level): tasks, runs, tokens, average and
-- p95 tokens per task (an agent's tokens in a task are the sum of its stretches there), errors, users.
-- {start}/{end} are midnights UTC (the reporter's periods are whole days): the rollup is per UTC day.
-- tasks and users are exact (uniqExact states), and so is the p95 (interpolated between ranks, as
-- quantileExactInclusive over the tasks' sums), within the rollup's limits (schema 0006).
SELECT d.agent AS agent, uniqExactMerge(d.tasks) AS tasks, sum(d.runs) AS runs,
       sum(d.input_tokens) + sum(d.output_tokens) AS tokens, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens, if(tasks > 0, tokens / tasks, 0) AS avg_tokens_per_task,
       quantileExactInclusiveMerge(0.95)(d.tokens_per_task) AS p95_tokens_per_task, sum(d.errors) AS errors,
       uniqExactMerge(d.users) AS users, sum(d.duration_ms) AS duration_ms
FROM {db:Identifier}.agent_daily AS d
WHERE d.day >= toDate({start:DateTime64(3)}, 'UTC') AND d.day < toDate({end:DateTime64(3)}, 'UTC')
GROUP BY d.agent
ORDER BY tasks DESC, agent
