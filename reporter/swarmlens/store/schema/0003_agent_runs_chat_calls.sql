-- One row per `invoke_agent` span (agent_runs) and per `chat` span (chat_calls). Rankings are read by
-- agent and time, per-model figures by model and time; a task page finds its rows through the
-- task_id bloom filter.

CREATE TABLE IF NOT EXISTS {{db}}.{{local agent_runs}} {{on_cluster}} (
    task_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    service_name LowCardinality(String),
    agent LowCardinality(String),
    model LowCardinality(String),
    start_time DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    duration_ms UInt64 CODEC(T64, ZSTD(1)),
    input_tokens UInt64,
    output_tokens UInt64,
    turns UInt32,
    handoff_from LowCardinality(String),
    status LowCardinality(String),
    error_type LowCardinality(String),
    INDEX idx_task_id task_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {{engine ReplacingMergeTree()}}
PARTITION BY toYYYYMM(start_time)
ORDER BY (agent, start_time, task_id, span_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db agent_runs cityHash64(task_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.agent_runs_mv {{on_cluster}}
TO {{db}}.{{local agent_runs}}
AS SELECT
    TraceId AS task_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    SpanAttributes['enduser.id'] AS user_id,
    SpanAttributes['session.id'] AS session_id,
    ServiceName AS service_name,
    -- The span name carries the agent too ("invoke_agent Triage"), for producers that omit the attribute.
    if(SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'],
       trimLeft(substring(SpanName, 13))) AS agent,
    SpanAttributes['gen_ai.request.model'] AS model,
    toDateTime64(Timestamp, 3, 'UTC') AS start_time,
    intDiv(Duration, 1000000) AS duration_ms,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
    toUInt32OrZero(SpanAttributes['swarm.agent.turns']) AS turns,
    SpanAttributes['swarm.handoff.from'] AS handoff_from,
    if(positionCaseInsensitive(StatusCode, 'error') > 0, 'error', 'ok') AS status,
    SpanAttributes['error.type'] AS error_type
FROM {{otel}}.{{local otel_traces}}
WHERE startsWith(SpanName, 'invoke_agent');

CREATE TABLE IF NOT EXISTS {{db}}.{{local chat_calls}} {{on_cluster}} (
    task_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    service_name LowCardinality(String),
    agent LowCardinality(String),
    model LowCardinality(String),
    response_model LowCardinality(String),
    response_id String CODEC(ZSTD(1)),
    finish_reasons Array(LowCardinality(String)),
    start_time DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    duration_ms UInt64 CODEC(T64, ZSTD(1)),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    usage_estimated Bool,
    status LowCardinality(String),
    error_type LowCardinality(String),
    INDEX idx_task_id task_id TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = {{engine ReplacingMergeTree()}}
PARTITION BY toYYYYMM(start_time)
ORDER BY (model, start_time, task_id, span_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db chat_calls cityHash64(task_id)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.chat_calls_mv {{on_cluster}}
TO {{db}}.{{local chat_calls}}
AS SELECT
    TraceId AS task_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    SpanAttributes['enduser.id'] AS user_id,
    ServiceName AS service_name,
    SpanAttributes['gen_ai.agent.name'] AS agent,
    -- The official OpenAI instrumentation names the span "chat {model}" and sets the same attributes.
    if(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
       trimLeft(substring(SpanName, 5))) AS model,
    SpanAttributes['gen_ai.response.model'] AS response_model,
    SpanAttributes['gen_ai.response.id'] AS response_id,
    multiIf(startsWith(SpanAttributes['gen_ai.response.finish_reasons'], '['),
                JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)'),
            startsWith(SpanAttributes['gen_ai.response.finish_reasons'], '{"values"'),
                arrayMap(v -> JSONExtractString(v, 'stringValue'),
                         JSONExtractArrayRaw(SpanAttributes['gen_ai.response.finish_reasons'], 'values')),
            SpanAttributes['gen_ai.response.finish_reasons'] = '', CAST([], 'Array(String)'),
            [SpanAttributes['gen_ai.response.finish_reasons']]) AS finish_reasons,
    toDateTime64(Timestamp, 3, 'UTC') AS start_time,
    intDiv(Duration, 1000000) AS duration_ms,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cache_read_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS reasoning_output_tokens,
    lower(SpanAttributes['swarm.usage.estimated']) IN ('true', '1') AS usage_estimated,
    if(positionCaseInsensitive(StatusCode, 'error') > 0, 'error', 'ok') AS status,
    SpanAttributes['error.type'] AS error_type
FROM {{otel}}.{{local otel_traces}}
WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ');
