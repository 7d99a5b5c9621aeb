-- Search across every user's tasks, newest first. `tasks` is sorted by user, so there a search of
-- all users reads the matching granules of every user and sorts them; task_search holds the columns
-- a search filters on and shows, sorted by time, so that ClickHouse reads it newest first and stops
-- once a page is full (for a common word), or skips the granules without the word through the
-- text indexes (for a rare one). A search within one user's tasks still reads `tasks` by its key.
-- Measured at 1M tasks (docs/benchmarks.md): all-user search p50 53 -> 11 ms ('refund', common),
-- 45 -> 12 ms ('firmware', rare), for 77 bytes per task on disk.

CREATE TABLE IF NOT EXISTS {{db}}.{{local task_search}} {{on_cluster}} (
    start_time DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    task_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    duration_ms UInt64 CODEC(T64, ZSTD(1)),
    status LowCardinality(String),
    error_type LowCardinality(String),
    input String CODEC(ZSTD(3)),
    output String CODEC(ZSTD(3)),
    agents Array(LowCardinality(String)),
    final_agent LowCardinality(String),
    handoffs UInt32,
    total_tokens UInt64,
    INDEX idx_input input TYPE text(tokenizer = splitByNonAlpha, preprocessor = lower(input)),
    INDEX idx_output output TYPE text(tokenizer = splitByNonAlpha, preprocessor = lower(output))
) ENGINE = {{engine ReplacingMergeTree()}}
PARTITION BY toYYYYMM(start_time)
ORDER BY (start_time, task_id)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

{{distributed db task_search cityHash64(task_id)}};

-- Filled once from `tasks` on an installation that has tasks already (only while it is empty).
INSERT INTO {{db}}.task_search
SELECT start_time, task_id, user_id, duration_ms, status, error_type, input, output, agents, final_agent, handoffs,
       total_tokens
FROM {{db}}.tasks FINAL
WHERE (SELECT count() FROM {{db}}.task_search) = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.task_search_mv {{on_cluster}}
TO {{db}}.{{local task_search}}
AS SELECT start_time, task_id, user_id, duration_ms, status, error_type, input, output, agents, final_agent, handoffs,
          total_tokens
FROM {{db}}.{{local tasks}};
