-- Agent-level figures per agent in a period (usage_daily, from invoke_agent spans), optionally of one
-- user, with each agent's cost from its chat calls priced per call model (chat_usage_daily, schema
-- 0014; prices in force now). Model calls outside any agent are the row of agent ''.
SELECT if(a.agent != '', a.agent, c.agent) AS agent, a.runs AS runs, a.input_tokens AS input_tokens,
       a.output_tokens AS output_tokens, a.tokens AS tokens, a.errors AS errors,
       if(a.agent != '' OR a.runs > 0, a.users, c.users) AS users, c.cost_usd AS cost_usd
FROM (
    SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
           sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors, uniqExact(d.user_id) AS users
    FROM {db:Identifier}.usage_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date} AND ({user:String} = '' OR d.user_id = {user:String})
    GROUP BY d.agent
) AS a
FULL OUTER JOIN (
    SELECT m.agent AS agent, uniqExact(m.user_id) AS users,
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
    FROM {db:Identifier}.chat_usage_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date} AND ({user:String} = '' OR m.user_id = {user:String})
    GROUP BY m.agent
) AS c ON c.agent = a.agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
