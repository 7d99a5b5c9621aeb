-- Task-level totals of a period over all users, from the tasks_daily_all rollup (schema 0007): the
-- figures of task_totals with {user} = '', from one row per day instead of one per user and day.
SELECT sum(d.tasks) AS tasks, sum(d.input_tokens) AS input_tokens, sum(d.output_tokens) AS output_tokens,
       sum(d.input_tokens) + sum(d.output_tokens) AS tokens, sum(d.errors) AS errors, sum(d.duration_ms) AS duration_ms,
       uniqExactMerge(d.users) AS active_users
FROM {db:Identifier}.tasks_daily_all AS d
WHERE d.day >= {start:Date} AND d.day < {end:Date}
