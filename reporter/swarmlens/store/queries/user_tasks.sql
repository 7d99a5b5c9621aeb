-- A page of a user's task history, newest first, by keyset: the rows before the cursor
-- (start_time, task_id) of the previous page's last row. Reads the (user_id, start_time) sort key.
SELECT task_id, user_id, session_id, start_time, duration_ms, status, error_type, input, output, agents,
       start_agent, final_agent, handoffs, turns, input_tokens, output_tokens, total_tokens
FROM {db:Identifier}.tasks FINAL
WHERE user_id = {user:String}
  AND ({has_cursor:UInt8} = 0 OR start_time < {cursor_time:DateTime64(3)}
       OR (start_time = {cursor_time:DateTime64(3)} AND task_id < {cursor_id:String}))
ORDER BY start_time DESC, task_id DESC
LIMIT {limit:UInt32}
