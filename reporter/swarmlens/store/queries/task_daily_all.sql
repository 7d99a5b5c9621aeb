-- Task-level figures per day of a period over all users (tasks_daily_all rollup, schema 0007): the
-- rows of task_daily with {user} = ''.
SELECT d.day AS day, sum(d.tasks) AS tasks, sum(d.input_tokens) + sum(d.output_tokens) AS tokens,
       sum(d.errors) AS errors, uniqExactMerge(d.users) AS active_users, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens
FROM {db:Identifier}.tasks_daily_all AS d
WHERE d.day >= {start:Date} AND d.day < {end:Date}
GROUP BY d.day
ORDER BY day
