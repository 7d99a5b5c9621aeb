-- Feedback per agent: the latest vote of each voter on each task, counted for every agent that ran
-- in the task. {start}/{end} bound the tasks' time (votes on tasks of the period). Feedback rows
-- carry their task's start time and agents (schema 0007), so this reads the feedback table alone.
SELECT agent, countIf(f.vote > 0) AS up, countIf(f.vote < 0) AS down, count() AS votes
FROM (
    SELECT vote, task_agents FROM {db:Identifier}.feedback FINAL
    WHERE task_start_time >= {start:DateTime64(3)} AND task_start_time < {end:DateTime64(3)}
) AS f
ARRAY JOIN arrayDistinct(f.task_agents) AS agent
GROUP BY agent
ORDER BY agent
