-- Agent-level figures per day of a period narrowed to a user, an agent and/or a model ('' = any):
-- scope_totals per day, with the chat-level cost of the same scope (chat_usage_daily, schema 0014).
SELECT if(a.day != toDate(0), a.day, c.day) AS day, a.runs AS runs, a.tokens AS tokens, a.errors AS errors,
       a.active_users AS active_users, c.cost_usd AS cost_usd
FROM (
    SELECT d.day AS day, sum(d.agent_runs) AS runs, sum(d.input_tokens + d.output_tokens) AS tokens,
           sum(d.errors) AS errors, uniqExactIf(d.user_id, d.agent_runs > 0) AS active_users
    FROM {db:Identifier}.usage_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
      AND ({user:String} = '' OR d.user_id = {user:String})
      AND ({agent:String} = '' OR d.agent = {agent:String})
      AND ({model:String} = '' OR d.model = {model:String})
    GROUP BY d.day
) AS a
FULL OUTER JOIN (
    SELECT m.day AS day,
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
           sumIf(m.input_tokens + m.output_tokens, p.model = '') AS unpriced_tokens
    FROM {db:Identifier}.chat_usage_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
      AND ({user:String} = '' OR m.user_id = {user:String})
      AND ({agent:String} = '' OR m.agent = {agent:String})
      AND ({model:String} = '' OR m.model = {model:String})
    GROUP BY m.day
) AS c ON c.day = a.day
ORDER BY day
