-- Chat-level figures per model in a period (chat_usage_daily, schema 0014: the chat calls that count,
-- with cost at the prices in force now; optionally of one user. {start}/{end} are midnights UTC
-- (whole days of the rollup).
SELECT c.model AS model, c.calls AS calls, c.input_tokens AS input_tokens, c.output_tokens AS output_tokens,
       c.input_tokens + c.output_tokens AS tokens, c.errors AS errors,
       toFloat64(p.usd_per_1m_input) AS usd_per_1m_input, toFloat64(p.usd_per_1m_output) AS usd_per_1m_output,
       (c.input_tokens * toFloat64(p.usd_per_1m_input) + c.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       p.model != '' AS priced
FROM (
    SELECT m.model AS model, sum(m.calls) AS calls, sum(m.input_tokens) AS input_tokens,
           sum(m.output_tokens) AS output_tokens, sum(m.errors) AS errors
    FROM {db:Identifier}.chat_usage_daily AS m
    WHERE m.day >= toDate({start:DateTime64(3)}, 'UTC') AND m.day < toDate({end:DateTime64(3)}, 'UTC')
      AND ({user:String} = '' OR m.user_id = {user:String})
    GROUP BY m.model
) AS c
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = c.model
ORDER BY tokens DESC, model
