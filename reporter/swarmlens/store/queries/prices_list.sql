-- The model price table, as it applies now to every report (prices are read at query time).
SELECT model, toFloat64(usd_per_1m_input) AS usd_per_1m_input, toFloat64(usd_per_1m_output) AS usd_per_1m_output,
       updated_at
FROM {db:Identifier}.model_prices FINAL
ORDER BY model
