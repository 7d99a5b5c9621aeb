-- Agent-level figures per day of a period narrowed to a user, an agent and/or a model ('' = any):
-- scope_totals per day.
SELECT d.day AS day, sum(d.agent_runs) AS runs, sum(d.input_tokens + d.output_tokens) AS tokens,
       sum(d.errors) AS errors, uniqExactIf(d.user_id, d.agent_runs > 0) AS active_users,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
FROM {db:Identifier}.usage_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date}
  AND ({user:String} = '' OR d.user_id = {user:String})
  AND ({agent:String} = '' OR d.agent = {agent:String})
  AND ({model:String} = '' OR d.model = {model:String})
GROUP BY d.day
ORDER BY day
