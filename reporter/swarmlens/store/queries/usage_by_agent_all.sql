-- Agent-level figures per agent in a period over all users (agent_model_daily, schema 0007), with each
-- agent's cost from its chat calls, priced per call model (chat_agent_model_daily, schema 0014): the
-- rows of usage_by_agent with {user} = ''. Model calls outside any agent are the row of agent ''.
SELECT if(a.agent != '', a.agent, c.agent) AS agent, a.runs AS runs, a.input_tokens AS input_tokens,
       a.output_tokens AS output_tokens, a.tokens AS tokens, a.errors AS errors, a.users AS users,
       c.cost_usd AS cost_usd
FROM (
    SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
           sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors, uniqExactMerge(d.users) AS users
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
