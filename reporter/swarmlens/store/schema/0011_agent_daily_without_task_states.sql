-- agent_daily kept two states per (day, agent) that nothing reads since schema 0007: the set of task
-- ids (`tasks`) and the list of tokens per task (`tokens_per_task`). The ranking counts tasks and
-- takes its p95 from agent_tasks instead, so agent_daily keeps the sums and the distinct users.
-- The states were 45 of its 50 MiB at 1M tasks, and every insert built them.
--
-- The view is replaced first, so that no insert meets a view writing columns that are gone; rows
-- inserted between its drop and its creation miss agent_daily (migrate before the collectors start,
-- as `swarmlens up` does). On a cluster the Distributed table loses the columns too (on a single
-- server the second ALTER finds them gone already).

DROP VIEW IF EXISTS {{db}}.agent_daily_mv {{on_cluster}};

ALTER TABLE {{db}}.{{local agent_daily}} {{on_cluster}}
    DROP COLUMN IF EXISTS tasks,
    DROP COLUMN IF EXISTS tokens_per_task;

ALTER TABLE {{db}}.agent_daily {{on_cluster}}
    DROP COLUMN IF EXISTS tasks,
    DROP COLUMN IF EXISTS tokens_per_task;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.agent_daily_mv {{on_cluster}}
TO {{db}}.{{local agent_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    agent,
    count() AS runs,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms,
    uniqExactState(user_id) AS users
FROM {{db}}.{{local agent_runs}}
GROUP BY day, agent;
