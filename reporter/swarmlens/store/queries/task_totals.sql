-- Task-level totals of a period (tasks_daily, from root spans), optionally of one user. Columns are
-- qualified (d.) so that they never resolve to the aliases of the same name.
SELECT sum(d.tasks) AS tasks, sum(d.input_tokens) AS input_tokens, sum(d.output_tokens) AS output_tokens,
       sum(d.input_tokens + d.output_tokens) AS tokens, sum(d.errors) AS errors, sum(d.duration_ms) AS duration_ms,
       uniqExactIf(d.user_id, d.tasks > 0) AS active_users
FROM {db:Identifier}.tasks_daily AS d
WHERE d.day >= {start:Date} AND d.day < {end:Date} AND ({user:String} = '' OR d.user_id = {user:String})
