-- Agent-level figures per agent of a period narrowed to a user, an agent and/or a model ('' = any),
-- with the cost of each agent's chat calls in that scope, each priced by its own model
-- (chat_usage_daily, schema 0014): the filtered dashboard's top agents and the filtered agents ranking.
SELECT if(a.agent != '', a.agent, c.agent) AS agent, a.runs AS runs, a.input_tokens AS input_tokens,
       a.output_tokens AS output_tokens, a.tokens AS tokens, a.errors AS errors, a.users AS users,
       c.cost_usd AS cost_usd
FROM (
    SELECT d.agent AS agent, sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens,
           sum(d.output_tokens) AS output_tokens, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors, uniqExact(d.user_id) AS users
    FROM {db:Identifier}.usage_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
      AND ({user:String} = '' OR d.user_id = {user:String})
      AND ({agent:String} = '' OR d.agent = {agent:String})
      AND ({model:String} = '' OR d.model = {model:String})
    GROUP BY d.agent
) AS a
FULL OUTER JOIN (
    SELECT m.agent AS agent,
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
           sumIf(m.input_tokens + m.output_tokens, p.model = '') AS unpriced_tokens
    FROM {db:Identifier}.chat_usage_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
      AND ({user:String} = '' OR m.user_id = {user:String})
      AND ({agent:String} = '' OR m.agent = {agent:String})
      AND ({model:String} = '' OR m.model = {model:String})
    GROUP BY m.agent
) AS c ON c.agent = a.agent
ORDER BY tokens DESC, agent
LIMIT {limit:UInt32}
