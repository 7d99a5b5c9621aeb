-- Agent-level totals of a period narrowed to a user, an agent and/or a model ('' = any), from
-- usage_daily (one row per day, user, agent and model; invoke_agent spans), with the cost of the chat
-- calls in the same scope, each priced by its own model (chat_usage_daily, schema 0014; prices in force
-- now). The dashboard's figures when a filter is set: tasks are not split by agent or model, so a
-- filtered view counts agent runs.
SELECT a.runs AS runs, a.input_tokens AS input_tokens, a.output_tokens AS output_tokens, a.tokens AS tokens,
       a.errors AS errors, a.active_users AS active_users, c.cost_usd AS cost_usd, c.unpriced_tokens AS unpriced_tokens
FROM (
    SELECT sum(d.agent_runs) AS runs, sum(d.input_tokens) AS input_tokens, sum(d.output_tokens) AS output_tokens,
           sum(d.input_tokens + d.output_tokens) AS tokens, sum(d.errors) AS errors,
           uniqExactIf(d.user_id, d.agent_runs > 0) AS active_users
    FROM {db:Identifier}.usage_daily AS d
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
      AND ({user:String} = '' OR d.user_id = {user:String})
      AND ({agent:String} = '' OR d.agent = {agent:String})
      AND ({model:String} = '' OR d.model = {model:String})
) AS a
CROSS JOIN (
    SELECT
           sum(m.input_tokens * toFloat64(p.usd_per_1m_input) + m.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
           sumIf(m.input_tokens + m.output_tokens, p.model = '') AS unpriced_tokens
    FROM {db:Identifier}.chat_usage_daily AS m
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = m.model
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
      AND ({user:String} = '' OR m.user_id = {user:String})
      AND ({agent:String} = '' OR m.agent = {agent:String})
      AND ({model:String} = '' OR m.model = {model:String})
) AS c
