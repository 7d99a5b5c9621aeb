-- The chat calls of one task, in order (the waterfall when raw spans have expired).
SELECT span_id, parent_span_id, agent, model, start_time, duration_ms, input_tokens, output_tokens, status, error_type
FROM {db:Identifier}.chat_calls FINAL
WHERE task_id = {task:String}
ORDER BY start_time, span_id
