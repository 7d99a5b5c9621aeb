-- The agent stretches of one task, in order, with tokens and cost at the prices in force now.
SELECT r.span_id AS span_id, r.agent AS agent, r.model AS model, r.start_time AS start_time, r.duration_ms AS duration_ms,
       r.input_tokens AS input_tokens, r.output_tokens AS output_tokens, r.turns AS turns,
       r.handoff_from AS handoff_from, r.status AS status, r.error_type AS error_type,
       (r.input_tokens * toFloat64(p.usd_per_1m_input) + r.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd,
       p.model != '' AS priced
FROM (SELECT * FROM {db:Identifier}.agent_runs FINAL WHERE task_id = {task:String}) AS r
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = r.model
ORDER BY start_time, span_id
