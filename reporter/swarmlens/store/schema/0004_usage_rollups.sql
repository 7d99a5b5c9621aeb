-- Daily rollups for reports, quotas and dashboards. Each counts tokens at one level only:
--   usage_daily  (day, user_id, agent, model)  from agent_runs, i.e. invoke_agent spans
--   tasks_daily  (day, user_id)                from tasks, i.e. root spans
-- Rows are partial sums: always read them with sum(...) GROUP BY. Each view reads the table the
-- previous view writes, so the extraction rules live in one place (0002, 0003).

CREATE TABLE IF NOT EXISTS {{db}}.{{local usage_daily}} {{on_cluster}} (
    day Date,
    user_id String,
    agent LowCardinality(String),
    model LowCardinality(String),
    agent_runs UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id, agent, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db usage_daily cityHash64(user_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.usage_daily_mv {{on_cluster}}
TO {{db}}.{{local usage_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    user_id,
    agent,
    model,
    count() AS agent_runs,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local agent_runs}}
GROUP BY day, user_id, agent, model;

CREATE TABLE IF NOT EXISTS {{db}}.{{local tasks_daily}} {{on_cluster}} (
    day Date,
    user_id String,
    tasks UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db tasks_daily cityHash64(user_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.tasks_daily_mv {{on_cluster}}
TO {{db}}.{{local tasks_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    user_id,
    count() AS tasks,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local tasks}}
GROUP BY day, user_id;
