-- Agent-level figures per user of a period narrowed to a user, an agent and/or a model ('' = any),
-- with the cost of each user's chat calls in that scope, each priced by its own model
-- (chat_usage_daily, schema 0014): the filtered dashboard's top users.
SELECT if(a.user_id != '', a.user_id, c.user_id) AS user_id, a.runs AS runs, a.tokens AS tokens, a.errors AS errors,
       c.cost_usd AS cost_usd
FROM (
    SELECT d.user_id AS user_id, sum(d.agent_runs) AS runs, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors
    FROM {db:Identifier}.usage_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
      AND ({user:String} = '' OR d.user_id = {user:String})
      AND ({agent:String} = '' OR d.agent = {agent:String})
      AND ({model:String} = '' OR d.model = {model:String})
    GROUP BY d.user_id
) AS a
FULL OUTER JOIN (
    SELECT m.user_id AS user_id,
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
           sumIf(m.input_tokens + m.output_tokens, p.model = '') AS unpriced_tokens
    FROM {db:Identifier}.chat_usage_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
      AND ({user:String} = '' OR m.user_id = {user:String})
      AND ({agent:String} = '' OR m.agent = {agent:String})
      AND ({model:String} = '' OR m.model = {model:String})
    GROUP BY m.user_id
) AS c ON c.user_id = a.user_id
ORDER BY tokens DESC, user_id
LIMIT {limit:UInt32}
