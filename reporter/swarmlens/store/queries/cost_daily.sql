-- Cost per day, optionally of one user (chat level: chat_usage_daily x model prices as they are now,
-- schema 0014), and the tokens of models without a price.
SELECT d.day AS day,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       sumIf(d.input_tokens + d.output_tokens, p.model = '') AS unpriced_tokens
FROM {db:Identifier}.chat_usage_daily AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
WHERE d.day >= {start:Date} AND d.day < {end:Date} AND ({user:String} = '' OR d.user_id = {user:String})
GROUP BY day
ORDER BY day
