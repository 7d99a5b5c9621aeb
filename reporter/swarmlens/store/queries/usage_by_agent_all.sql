-- Agent-level figures per agent in a period over all users (agent_model_daily, schema 0007), with cost
-- at the prices in force now: the rows of usage_by_agent with {user} = ''. The rollup's rows are
-- priced one by one (a few dozen per day), so each agent's user states are merged only once.
SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
       sum(d.errors) AS errors, uniqExactMerge(d.users) AS users,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
FROM {db:Identifier}.agent_model_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date}
GROUP BY agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
