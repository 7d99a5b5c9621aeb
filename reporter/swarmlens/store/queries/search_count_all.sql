-- How many tasks search_tasks_all finds (without its cursor), counted up to {cap}: the page shows
-- "10,000+" beyond, and a common word's full count would cost a scan of the period.
SELECT count() AS tasks FROM (
    SELECT 1 FROM {db:Identifier}.task_search FINAL
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
    LIMIT {cap:UInt32}
)
