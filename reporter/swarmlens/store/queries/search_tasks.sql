-- Task search, newest first, by keyset. Every filter is optional ('' = any). Keywords
-- (swarmlens.reports.search.match_params): {q} holds the words matched whole, through the text
-- indexes on input and output (tokens split on non-alphanumerics, lower-cased, so matching ignores
-- case); {p1}..{p4} are '%word%' patterns of the words matched from their start: ClickHouse
-- finds candidates on the same indexes' token dictionaries (lower(...) LIKE is the indexes'
-- expression), and {r1}..{r4}, the same words as regular expressions anchored at a word's start,
-- keep the rows where a word starts with one ("refun": "refund", not "nonrefundable").
-- Every word must occur, in the input or the output.
SELECT task_id, user_id, start_time, duration_ms, status, error_type, input, output, agents, final_agent,
       handoffs, total_tokens
FROM {db:Identifier}.tasks FINAL
WHERE start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)}
  AND ({user:String} = '' OR user_id = {user:String})
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
