-- Total cost of a period, optionally of one user: every chat call priced by its own model
-- (chat_usage_daily, originals only, schema 0014; prices in force now), and the tokens of calls whose
-- model has no price.
SELECT sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       sumIf(d.input_tokens + d.output_tokens, p.model = '') AS unpriced_tokens
FROM {db:Identifier}.chat_usage_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date} AND ({user:String} = '' OR d.user_id = {user:String})
