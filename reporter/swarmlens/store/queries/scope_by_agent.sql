-- Agent-level figures per agent of a period narrowed to a user, an agent and/or a model ('' = any),
-- with cost at the prices in force now: the filtered dashboard's top agents and the filtered agents
-- ranking.
SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
       sum(d.errors) AS errors, uniqExact(d.user_id) AS users,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
FROM {db:Identifier}.usage_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date}
  AND ({user:String} = '' OR d.user_id = {user:String})
  AND ({agent:String} = '' OR d.agent = {agent:String})
  AND ({model:String} = '' OR d.model = {model:String})
GROUP BY agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
