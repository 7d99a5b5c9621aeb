-- Feedback per agent: the latest vote of each voter on each task, counted for every agent that ran
-- in the task. {start}/{end} bound the tasks' time (votes on tasks of the period).
SELECT r.agent AS agent, countIf(f.vote > 0) AS up, countIf(f.vote < 0) AS down, count() AS votes
FROM (SELECT task_id, user_id, vote FROM {db:Identifier}.feedback FINAL) AS f
INNER JOIN (
    SELECT DISTINCT task_id, agent FROM {db:Identifier}.agent_runs FINAL
    WHERE task_id IN (SELECT task_id FROM {db:Identifier}.feedback FINAL)
      AND start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)}
) AS r ON r.task_id = f.task_id
GROUP BY agent
ORDER BY agent
