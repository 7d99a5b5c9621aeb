-- Per-task figures per agent of a period narrowed to a user and/or an agent ('' = any), from
-- agent_tasks (schema 0007; FINAL adds up a task's partial rows): tasks, average and p95 tokens per
-- task (interpolated, as agents_ranking). agent_tasks has no model, so a model filter cannot use it.
SELECT t.agent AS agent, count() AS tasks, sum(t.input_tokens) + sum(t.output_tokens) AS tokens,
       if(count() > 0, (sum(t.input_tokens) + sum(t.output_tokens)) / count(), 0) AS avg_tokens_per_task,
       quantileExactInclusive(0.95)(t.input_tokens + t.output_tokens) AS p95_tokens_per_task
FROM {db:Identifier}.agent_tasks AS t FINAL
WHERE t.day >= toDate({start:DateTime64(3)}, 'UTC') AND t.day < toDate({end:DateTime64(3)}, 'UTC')
  AND ({user:String} = '' OR t.user_id = {user:String})
  AND ({agent:String} = '' OR t.agent = {agent:String})
GROUP BY t.agent
ORDER BY tasks DESC, agent
