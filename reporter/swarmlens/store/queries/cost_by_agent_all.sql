-- Runs, tokens, errors and cost per agent in a period over all users (agent_model_daily, schema 0007,
-- prices in force now): usage_by_agent_all without the distinct users, whose exact states are most
-- of that query's work. For the dashboard's top agents and the agents page's cost column.
SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
       sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
       sum(d.errors) AS errors,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
FROM {db:Identifier}.agent_model_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date}
GROUP BY agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
