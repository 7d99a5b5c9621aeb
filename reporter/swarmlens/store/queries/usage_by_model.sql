-- Chat-level figures per model in a period (chat_calls, from chat spans), with cost at the prices in
-- force now; optionally of one user.
SELECT c.model AS model, count() AS calls, sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
       sum(c.input_tokens + c.output_tokens) AS tokens, countIf(c.status = 'error') AS errors,
       any(toFloat64(p.usd_per_1m_input)) AS usd_per_1m_input, any(toFloat64(p.usd_per_1m_output)) AS usd_per_1m_output,
       sum(c.input_tokens * toFloat64(p.usd_per_1m_input) + c.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       max(p.model != '') AS priced
FROM (
    SELECT model, input_tokens, output_tokens, status
    FROM {db:Identifier}.chat_calls FINAL
    WHERE start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)}
      AND ({user:String} = '' OR user_id = {user:String})
) AS c
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = c.model
GROUP BY model
ORDER BY tokens DESC, model
