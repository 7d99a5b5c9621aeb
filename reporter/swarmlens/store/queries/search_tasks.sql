-- Task search, newest first, by keyset. Every filter is optional ('' = any). The keyword matches
-- whole words of the input or the output through their text indexes (tokens split on
-- non-alphanumerics, lower-cased, so matching ignores case); several words must all occur.
SELECT task_id, user_id, start_time, duration_ms, status, error_type, input, output, agents, final_agent,
       handoffs, total_tokens
FROM {db:Identifier}.tasks FINAL
WHERE start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)}
  AND ({user:String} = '' OR user_id = {user:String})
  AND ({agent:String} = '' OR has(agents, {agent:String}))
  AND ({status:String} = '' OR status = {status:String})
  AND ({q:String} = '' OR hasAllTokens(input, {q:String}) OR hasAllTokens(output, {q:String}))
  AND ({has_cursor:UInt8} = 0 OR start_time < {cursor_time:DateTime64(3)}
       OR (start_time = {cursor_time:DateTime64(3)} AND task_id < {cursor_id:String}))
ORDER BY start_time DESC, task_id DESC
LIMIT {limit:UInt32}
