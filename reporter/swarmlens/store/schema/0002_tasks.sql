-- One row per task: the root span `invoke_workflow swarm` of each trace (task_id = TraceId).
-- History is read by user and time, so that is the sort key. A task re-sent in a different batch
-- lands twice and collapses on merge, or at once with FINAL; an identical retried batch is dropped
-- by insert deduplication before it gets here.

CREATE DATABASE IF NOT EXISTS {{db}} {{on_cluster}};

CREATE TABLE IF NOT EXISTS {{db}}.{{local tasks}} {{on_cluster}} (
    task_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    conversation_id String CODEC(ZSTD(1)),
    service_name LowCardinality(String),
    start_time DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    end_time DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    duration_ms UInt64 CODEC(T64, ZSTD(1)),
    status LowCardinality(String),
    error_type LowCardinality(String),
    error_message String CODEC(ZSTD(1)),
    input String CODEC(ZSTD(3)),
    output String CODEC(ZSTD(3)),
    agents Array(LowCardinality(String)),
    start_agent LowCardinality(String),
    final_agent LowCardinality(String),
    handoffs UInt32,
    turns UInt32,
    input_tokens UInt64,
    output_tokens UInt64,
    total_tokens UInt64,
    INDEX idx_task_id task_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_input input TYPE text(tokenizer = splitByNonAlpha, preprocessor = lower(input)),
    INDEX idx_output output TYPE text(tokenizer = splitByNonAlpha, preprocessor = lower(output)),
    -- All-user time-range scans (ops views, exports) find their rows through this index projection,
    -- which stores only row offsets sorted by start_time, not a second copy of the rows.
    PROJECTION by_start_time INDEX start_time TYPE basic
) ENGINE = {{engine ReplacingMergeTree()}}
PARTITION BY toYYYYMM(start_time)
ORDER BY (user_id, start_time, task_id)
-- Granules of 1024 rows, not 8192: a history page or a task reads one granule of every wide column
-- (input/output at ZSTD(3)), so smaller granules make point lookups cheaper (measured at 1M tasks:
-- deep history page 18.4 -> 13.8 ms p50, task page 12.1 -> 11.0 ms; first page and size on disk
-- unchanged).
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000,
         deduplicate_merge_projection_mode = 'rebuild';

{{distributed db tasks cityHash64(task_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.tasks_mv {{on_cluster}}
TO {{db}}.{{local tasks}}
AS SELECT
    TraceId AS task_id,
    SpanId AS span_id,
    SpanAttributes['enduser.id'] AS user_id,
    SpanAttributes['session.id'] AS session_id,
    SpanAttributes['gen_ai.conversation.id'] AS conversation_id,
    ServiceName AS service_name,
    toDateTime64(Timestamp, 3, 'UTC') AS start_time,
    toDateTime64(Timestamp + toIntervalNanosecond(Duration), 3, 'UTC') AS end_time,
    intDiv(Duration, 1000000) AS duration_ms,
    if(positionCaseInsensitive(StatusCode, 'error') > 0, 'error', 'ok') AS status,
    SpanAttributes['error.type'] AS error_type,
    StatusMessage AS error_message,
    SpanAttributes['swarm.task.input'] AS input,
    SpanAttributes['swarm.task.output'] AS output,
    -- A string[] attribute reaches the Map as a JSON array ("[\"a\",\"b\"]") from the contrib exporter, as
    -- OTLP JSON ({"values":[{"stringValue":"a"},...]}) from rotel; a plain string is one agent.
    multiIf(startsWith(SpanAttributes['swarm.task.agents'], '['),
                JSONExtract(SpanAttributes['swarm.task.agents'], 'Array(String)'),
            startsWith(SpanAttributes['swarm.task.agents'], '{"values"'),
                arrayMap(v -> JSONExtractString(v, 'stringValue'),
                         JSONExtractArrayRaw(SpanAttributes['swarm.task.agents'], 'values')),
            SpanAttributes['swarm.task.agents'] = '', CAST([], 'Array(String)'),
            [SpanAttributes['swarm.task.agents']]) AS agents,
    SpanAttributes['gen_ai.agent.name'] AS start_agent,
    SpanAttributes['swarm.task.final_agent'] AS final_agent,
    toUInt32OrZero(SpanAttributes['swarm.task.handoffs']) AS handoffs,
    toUInt32OrZero(SpanAttributes['swarm.task.turns']) AS turns,
    toUInt64OrZero(SpanAttributes['swarm.task.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['swarm.task.usage.output_tokens']) AS output_tokens,
    input_tokens + output_tokens AS total_tokens
FROM {{otel}}.{{local otel_traces}}
WHERE SpanName = 'invoke_workflow swarm';
