-- How many votes up and down the feedback page's filters match (every page of them).
SELECT countIf(vote > 0) AS up, countIf(vote < 0) AS down
FROM {db:Identifier}.feedback FINAL
WHERE created_at >= {start:DateTime64(3)} AND created_at < {end:DateTime64(3)}
  AND ({vote:Int8} = 0 OR vote = {vote:Int8})
  AND ({agent:String} = '' OR has(task_agents, {agent:String}))
