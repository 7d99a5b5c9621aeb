-- Total cost of a period over all users, every chat call priced by its own model (chat_agent_model_daily,
-- schema 0014): the figures of cost_total with {user} = ''.
SELECT sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       sumIf(d.input_tokens + d.output_tokens, p.model = '') AS unpriced_tokens
FROM (
    SELECT m.model AS model, sum(m.input_tokens) AS input_tokens, sum(m.output_tokens) AS output_tokens
    FROM {db:Identifier}.chat_agent_model_daily AS m
    WHERE m.day >= {start:Date} AND m.day < {end:Date}
    GROUP BY m.model
) AS d
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = d.model
