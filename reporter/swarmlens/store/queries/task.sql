-- One task by id (the bloom filter on task_id finds its granule).
SELECT task_id, span_id, user_id, session_id, conversation_id, service_name, start_time, end_time, duration_ms,
       status, error_type, error_message, input, output, agents, start_agent, final_agent, handoffs, turns,
       input_tokens, output_tokens, total_tokens
FROM {db:Identifier}.tasks FINAL
WHERE task_id = {task:String}
LIMIT 1
