-- Rollups for the all-user reports and the agents page, so that a page reads a few thousand rows
-- instead of a period of per-user rows (measured at 1M tasks in docs/benchmarks.md):
--   tasks_daily_all      (day)                from tasks:      dashboard and report totals, daily trend
--   agent_model_daily    (day, agent, model)  from agent_runs: cost, per-agent usage of all users
--   model_daily_all      (day, model)         from chat_calls: per-model figures of all users
--   agent_tasks          (agent, day, task)   from agent_runs: an agent's runs and tokens per task
--                                             (agent ranking, outliers)
-- and feedback rows carry their task's start time and agents, so that ratings per agent read the
-- feedback table alone.
--
-- Like the other rollups they are filled per insert block (read with sum / -Merge and GROUP BY, or
-- FINAL for agent_tasks), and a span re-sent in a *different* batch is counted twice here. Each counts
-- tokens at the level of the table it reads, as usage_daily and model_daily do (0004, 0006).
--
-- On an existing installation each new table is filled once from the detail tables it derives from
-- (only while it is empty, so a migration run again does not count twice); the view that keeps it
-- current is created right after. Rows that arrive between the two are missed: migrate before the
-- collectors start, as `swarmlens up` does.

CREATE TABLE IF NOT EXISTS {{db}}.{{local tasks_daily_all}} {{on_cluster}} (
    day Date,
    tasks SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    duration_ms SimpleAggregateFunction(sum, UInt64),
    -- users with at least one task that day (exact; the states merge across days and blocks)
    users AggregateFunction(uniqExact, String)
) ENGINE = {{engine AggregatingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY day
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db tasks_daily_all rand()}};

INSERT INTO {{db}}.tasks_daily_all
SELECT toDate(start_time, 'UTC') AS day, count() AS tasks, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms,
       uniqExactState(user_id) AS users
FROM {{db}}.tasks FINAL
WHERE (SELECT count() FROM {{db}}.tasks_daily_all) = 0
GROUP BY day;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.tasks_daily_all_mv {{on_cluster}}
TO {{db}}.{{local tasks_daily_all}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    count() AS tasks,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms,
    uniqExactState(user_id) AS users
FROM {{db}}.{{local tasks}}
GROUP BY day;

CREATE TABLE IF NOT EXISTS {{db}}.{{local agent_model_daily}} {{on_cluster}} (
    day Date,
    agent LowCardinality(String),
    model LowCardinality(String),
    agent_runs SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    duration_ms SimpleAggregateFunction(sum, UInt64),
    users AggregateFunction(uniqExact, String)
) ENGINE = {{engine AggregatingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, agent, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db agent_model_daily rand()}};

INSERT INTO {{db}}.agent_model_daily
SELECT toDate(start_time, 'UTC') AS day, agent, model, count() AS agent_runs, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms,
       uniqExactState(user_id) AS users
FROM {{db}}.agent_runs FINAL
WHERE (SELECT count() FROM {{db}}.agent_model_daily) = 0
GROUP BY day, agent, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.agent_model_daily_mv {{on_cluster}}
TO {{db}}.{{local agent_model_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    agent,
    model,
    count() AS agent_runs,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms,
    uniqExactState(user_id) AS users
FROM {{db}}.{{local agent_runs}}
GROUP BY day, agent, model;

CREATE TABLE IF NOT EXISTS {{db}}.{{local model_daily_all}} {{on_cluster}} (
    day Date,
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db model_daily_all rand()}};

INSERT INTO {{db}}.model_daily_all
SELECT toDate(start_time, 'UTC') AS day, model, count() AS calls, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms
FROM {{db}}.chat_calls FINAL
WHERE (SELECT count() FROM {{db}}.model_daily_all) = 0
GROUP BY day, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.model_daily_all_mv {{on_cluster}}
TO {{db}}.{{local model_daily_all}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    model,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local chat_calls}}
GROUP BY day, model;

-- An agent's runs and tokens in each task (the sums of its runs there), by day of the runs. Read with
-- FINAL, which adds up the partial rows of a task whose runs arrived in several blocks. Sorted by
-- agent and day: the ranking counts a period's rows per agent (tasks, exact p95 of tokens per task)
-- instead of merging sets of task ids, and the outlier list keeps the tasks above the agent's p95.
-- As in agent_daily, a task whose runs of one agent straddle midnight UTC counts once per day.
CREATE TABLE IF NOT EXISTS {{db}}.{{local agent_tasks}} {{on_cluster}} (
    agent LowCardinality(String),
    day Date,
    task_id String CODEC(ZSTD(1)),
    user_id SimpleAggregateFunction(any, String),
    first_start SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    runs SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    duration_ms SimpleAggregateFunction(sum, UInt64)
) ENGINE = {{engine AggregatingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (agent, day, task_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db agent_tasks cityHash64(task_id)}};

INSERT INTO {{db}}.agent_tasks
SELECT agent, toDate(start_time, 'UTC') AS day, task_id, any(user_id) AS user_id, min(start_time) AS first_start,
       count() AS runs, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms
FROM {{db}}.agent_runs FINAL
WHERE (SELECT count() FROM {{db}}.agent_tasks) = 0
GROUP BY agent, day, task_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.agent_tasks_mv {{on_cluster}}
TO {{db}}.{{local agent_tasks}}
AS SELECT
    agent,
    toDate(start_time, 'UTC') AS day,
    task_id,
    any(user_id) AS user_id,
    min(start_time) AS first_start,
    count() AS runs,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local agent_runs}}
GROUP BY agent, day, task_id;

-- Feedback knows its task's start time and agents (written with the vote by the reporter), so the
-- ratings per agent of a period read feedback alone. Votes cast before this migration get them from
-- the tasks table once; a re-inserted row has the same version (created_at), and of equal versions
-- the one inserted last wins.
ALTER TABLE {{db}}.feedback {{on_cluster}}
    ADD COLUMN IF NOT EXISTS task_start_time DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');

ALTER TABLE {{db}}.feedback {{on_cluster}}
    ADD COLUMN IF NOT EXISTS task_agents Array(LowCardinality(String));

INSERT INTO {{db}}.feedback (task_id, user_id, vote, comment, created_at, task_start_time, task_agents)
SELECT f.task_id, f.user_id, f.vote, f.comment, f.created_at, t.start_time, t.agents
FROM (SELECT task_id, user_id, vote, comment, created_at FROM {{db}}.feedback FINAL WHERE empty(task_agents)) AS f
INNER JOIN (SELECT task_id, start_time, agents FROM {{db}}.tasks FINAL
            WHERE task_id IN (SELECT task_id FROM {{db}}.feedback FINAL WHERE empty(task_agents))) AS t
    ON t.task_id = f.task_id;
