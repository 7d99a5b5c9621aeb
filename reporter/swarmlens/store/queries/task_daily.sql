-- Task-level figures per day of a period, optionally of one user (with the input and output tokens
-- apart, from which one user's period figures are summed: dashboard.user_figures_of).
SELECT d.day AS day, sum(d.tasks) AS tasks, sum(d.input_tokens + d.output_tokens) AS tokens, sum(d.errors) AS errors,
       uniqExactIf(d.user_id, d.tasks > 0) AS active_users, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens
FROM {db:Identifier}.tasks_daily AS d
WHERE d.day >= {start:Date} AND d.day < {end:Date} AND ({user:String} = '' OR d.user_id = {user:String})
GROUP BY d.day
ORDER BY day
