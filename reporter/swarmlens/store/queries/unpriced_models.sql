-- Models with chat calls in the period but no row in the price table: their cost shows as 0. Reads the
-- all-user chat-level rollup chat_agent_model_daily (schema 0014), so every name here is one a price
-- can be set for.
SELECT model, sum(input_tokens) + sum(output_tokens) AS tokens
FROM {db:Identifier}.chat_agent_model_daily
WHERE day >= {start:Date} AND day < {end:Date}
  AND model NOT IN (SELECT model FROM {db:Identifier}.model_prices FINAL)
GROUP BY model
ORDER BY tokens DESC
