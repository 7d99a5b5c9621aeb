-- Models with agent-level usage in the period but no row in the price table: their cost shows as 0.
-- Reads the all-user rollup agent_model_daily (schema 0007).
SELECT model, sum(input_tokens) + sum(output_tokens) AS tokens
FROM {db:Identifier}.agent_model_daily
WHERE day >= {start:Date} AND day < {end:Date}
  AND model NOT IN (SELECT model FROM {db:Identifier}.model_prices FINAL)
GROUP BY model
ORDER BY tokens DESC
