-- The tasks of some users since a time, oldest first: what the demo's showcase votes on.
SELECT task_id, user_id, start_time, status, agents
FROM {db:Identifier}.tasks FINAL
WHERE user_id IN {users:Array(String)} AND start_time >= {since:DateTime64(3)}
ORDER BY start_time, task_id
