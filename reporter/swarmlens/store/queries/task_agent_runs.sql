-- The agent stretches of one task, in order, with tokens, and the cost of the model calls made in each
-- stretch, each call priced by its own model at the prices in force now (the copies of a call that
-- another instrumentation also wrote count once, schema 0014); a stretch whose calls are not stored is
-- priced by its own model.
SELECT r.span_id AS span_id, r.agent AS agent, if(r.model != '', r.model, c.model) AS model,
       r.start_time AS start_time, r.duration_ms AS duration_ms,
       r.input_tokens AS input_tokens, r.output_tokens AS output_tokens, r.turns AS turns,
       r.handoff_from AS handoff_from, r.status AS status, r.error_type AS error_type,
       if(c.calls > 0, c.cost_usd,
          (r.input_tokens * toFloat64(p.usd_per_1m_input) + r.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6)
           AS cost_usd,
       if(c.calls > 0, c.priced = 1, p.model != '') AS priced
FROM (SELECT * FROM {db:Identifier}.agent_runs FINAL WHERE task_id = {task:String}) AS r
LEFT JOIN (
    SELECT k.parent_span_id AS parent_span_id, count() AS calls, any(k.model) AS model,
           sum(k.input_tokens * toFloat64(kp.usd_per_1m_input) + k.output_tokens * toFloat64(kp.usd_per_1m_output)) / 1e6
               AS cost_usd,
           min(toUInt8(kp.model != '')) AS priced
    FROM (SELECT parent_span_id, model, input_tokens, output_tokens FROM {db:Identifier}.chat_calls FINAL
          WHERE task_id = {task:String} AND duplicate_of = '') AS k
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS kp
        ON kp.model = k.model
    GROUP BY k.parent_span_id
) AS c ON c.parent_span_id = r.span_id
LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
    ON p.model = r.model
ORDER BY start_time, span_id
