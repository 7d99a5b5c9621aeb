-- Latest votes (one per task and voter) in a period, newest first, with the task's user and agents;
-- narrowed to a vote (0: both) and to the tasks an agent took part in ('' : any), one page at a time.
SELECT f.task_id AS task_id, f.user_id AS voter, f.vote AS vote, f.comment AS comment, f.created_at AS created_at,
       t.user_id AS task_user, t.final_agent AS final_agent, t.input AS input
FROM (
    SELECT task_id, user_id, vote, comment, created_at FROM {db:Identifier}.feedback FINAL
    WHERE created_at >= {start:DateTime64(3)} AND created_at < {end:DateTime64(3)}
      AND ({vote:Int8} = 0 OR vote = {vote:Int8})
      AND ({agent:String} = '' OR has(task_agents, {agent:String}))
    ORDER BY created_at DESC, task_id, user_id
    LIMIT {limit:UInt32} OFFSET {offset:UInt64}
) AS f
LEFT JOIN (
    SELECT task_id, user_id, final_agent, input FROM {db:Identifier}.tasks FINAL
    WHERE task_id IN (SELECT task_id FROM {db:Identifier}.feedback FINAL
                      WHERE created_at >= {start:DateTime64(3)} AND created_at < {end:DateTime64(3)})
) AS t ON t.task_id = f.task_id
ORDER BY created_at DESC, task_id, voter
