-- Task search across every user, newest first, by keyset: search_tasks with {user} = '', on
-- task_search (schema 0008), which is sorted by time so that a page of a common word is read from
-- the newest granules only. Every filter is optional ('' = any); the keywords are those of
-- search_tasks: {q} the words matched whole through the text indexes, {p1}..{p4} '%word%' patterns
-- of the words matched from their start, found on the indexes' token dictionaries (LIKE) and
-- kept where a word starts with them ({r1}..{r4}, regular expressions).
SELECT task_id, user_id, start_time, duration_ms, status, error_type, input, output, agents, final_agent,
       handoffs, total_tokens
FROM {db:Identifier}.task_search FINAL
WHERE start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)}
  AND ({agent:String} = '' OR has(agents, {agent:String}))
  AND ({status:String} = '' OR status = {status:String})
  AND ({q:String} = '' OR hasAllTokens(input, {q:String}) OR hasAllTokens(output, {q:String}))
  AND ({p1:String} = '' OR lower(input) LIKE {p1:String} OR lower(output) LIKE {p1:String})
  AND ({r1:String} = '' OR match(lower(input), {r1:String}) OR match(lower(output), {r1:String}))
  AND ({p2:String} = '' OR lower(input) LIKE {p2:String} OR lower(output) LIKE {p2:String})
  AND ({r2:String} = '' OR match(lower(input), {r2:String}) OR match(lower(output), {r2:String}))
  AND ({p3:String} = '' OR lower(input) LIKE {p3:String} OR lower(output) LIKE {p3:String})
  AND ({r3:String} = '' OR match(lower(input), {r3:String}) OR match(lower(output), {r3:String}))
  AND ({p4:String} = '' OR lower(input) LIKE {p4:String} OR lower(output) LIKE {p4:String})
  AND ({r4:String} = '' OR match(lower(input), {r4:String}) OR match(lower(output), {r4:String}))
  AND ({has_cursor:UInt8} = 0 OR start_time < {cursor_time:DateTime64(3)}
       OR (start_time = {cursor_time:DateTime64(3)} AND task_id < {cursor_id:String}))
ORDER BY start_time DESC, task_id DESC
LIMIT {limit:UInt32}
