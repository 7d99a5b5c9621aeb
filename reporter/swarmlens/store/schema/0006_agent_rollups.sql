-- Daily rollups of the agent and chat levels, so that the agents page and the "by model" breakdown
-- read a few thousand rows instead of a period of agent runs or chat calls:
--   agent_daily     (day, agent)                from agent_runs: ranking, tokens per task, p95
--   handoffs_daily  (day, from_agent, to_agent) from agent_runs: the handoff graph
--   model_daily     (day, user_id, model)       from chat_calls: per-model figures (chat level)
-- Each counts tokens at the level of the table it reads, as usage_daily does (0004).
--
-- Like the other rollups they are filled per insert block: rows are partial until merged (read
-- with sum(...) / the -Merge combinators and GROUP BY), and a span re-sent in a *different* batch
-- is counted twice here, while the ReplacingMergeTree detail tables collapse it under FINAL.
-- Figures that need a whole task (tasks per handoff, tokens per task) are computed within one
-- insert block: exact while a task's spans arrive in one batch, which the SDK's batch span processor
-- and the collectors do for a finished task (its spans end within milliseconds), and apart from a
-- task whose runs of one agent straddle midnight UTC (split into one task per day).

CREATE TABLE IF NOT EXISTS {{db}}.{{local agent_daily}} {{on_cluster}} (
    day Date,
    agent LowCardinality(String),
    runs SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    duration_ms SimpleAggregateFunction(sum, UInt64),
    -- Distinct tasks and users (exact, also across days and blocks: the states merge).
    tasks AggregateFunction(uniqExact, String),
    users AggregateFunction(uniqExact, String),
    -- The agent's tokens per task (the sum of its runs in a task), kept whole for an exact p95: the
    -- state is the list of per-task sums, 8 bytes per (agent, task). A t-digest would be smaller but
    -- is not the figure the ranking showed: with 15 tasks it gave the largest task (8,088) where the
    -- exact p95 is 3,461, and the outlier list, which looks for tasks above the p95, lost its outlier.
    tokens_per_task AggregateFunction(quantileExactInclusive(0.95), UInt64)
) ENGINE = {{engine AggregatingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, agent)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db agent_daily cityHash64(agent)}};

-- The inner query sums the block per (day, agent, task) first, so that the quantile state receives
-- tokens per task, not per run; user_id is the task's user (any of its runs), as in agents_ranking before.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.agent_daily_mv {{on_cluster}}
TO {{db}}.{{local agent_daily}}
AS SELECT
    day,
    agent,
    sum(t.runs) AS runs,
    sum(t.input_tokens) AS input_tokens,
    sum(t.output_tokens) AS output_tokens,
    sum(t.errors) AS errors,
    sum(t.duration_ms) AS duration_ms,
    uniqExactState(t.task_id) AS tasks,
    uniqExactState(t.user_id) AS users,
    quantileExactInclusiveState(0.95)(t.input_tokens + t.output_tokens) AS tokens_per_task
FROM (
    SELECT
        toDate(r.start_time, 'UTC') AS day,
        r.agent AS agent,
        r.task_id AS task_id,
        any(r.user_id) AS user_id,
        count() AS runs,
        sum(r.input_tokens) AS input_tokens,
        sum(r.output_tokens) AS output_tokens,
        countIf(r.status = 'error') AS errors,
        sum(r.duration_ms) AS duration_ms
    FROM {{db}}.{{local agent_runs}} AS r
    GROUP BY day, agent, task_id
) AS t
GROUP BY day, agent;

CREATE TABLE IF NOT EXISTS {{db}}.{{local handoffs_daily}} {{on_cluster}} (
    day Date,
    from_agent LowCardinality(String),
    to_agent LowCardinality(String),
    handoffs UInt64,
    tasks UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, from_agent, to_agent)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db handoffs_daily cityHash64(from_agent)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.handoffs_daily_mv {{on_cluster}}
TO {{db}}.{{local handoffs_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    handoff_from AS from_agent,
    agent AS to_agent,
    count() AS handoffs,
    uniqExact(task_id) AS tasks
FROM {{db}}.{{local agent_runs}}
WHERE handoff_from != ''
GROUP BY day, from_agent, to_agent;

CREATE TABLE IF NOT EXISTS {{db}}.{{local model_daily}} {{on_cluster}} (
    day Date,
    user_id String,
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db model_daily cityHash64(user_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.model_daily_mv {{on_cluster}}
TO {{db}}.{{local model_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    user_id,
    model,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local chat_calls}}
GROUP BY day, user_id, model;
