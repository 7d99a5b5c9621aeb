-- Runs, tokens and errors per agent in a period over all users (agent level: agent_model_daily, schema
-- 0007) with each agent's cost from its chat calls, each priced by its own model (chat_agent_model_daily,
-- schema 0014; prices in force now). Model calls made outside any agent are the row of agent ''
-- (no runs), so the agents' costs add up to the period's. For the dashboard's top agents and the
-- agents page's cost column.
SELECT if(a.agent != '', a.agent, c.agent) AS agent, a.runs AS runs, a.input_tokens AS input_tokens,
       a.output_tokens AS output_tokens, a.tokens AS tokens, a.errors AS errors, c.cost_usd AS cost_usd
FROM (
    SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
           sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors
    FROM {db:Identifier}.agent_model_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
    GROUP BY d.agent
) AS a
FULL OUTER JOIN (
    SELECT m.agent AS agent,
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
    FROM {db:Identifier}.chat_agent_model_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
    GROUP BY m.agent
) AS c ON c.agent = a.agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
