-- Cost per day over all users (chat level: chat_agent_model_daily x model prices as they are now,
-- schema 0014): the rows of cost_daily with {user} = ''.
SELECT d.day AS day,
       sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       sumIf(d.input_tokens + d.output_tokens, p.model = '') AS unpriced_tokens
FROM (
    SELECT m.day AS day, m.model AS model, sum(m.input_tokens) AS input_tokens, sum(m.output_tokens) AS output_tokens
    FROM {db:Identifier}.chat_agent_model_daily AS m
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
    GROUP BY m.day, m.model
) AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
GROUP BY day
ORDER BY day
