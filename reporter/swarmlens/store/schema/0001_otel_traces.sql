-- Raw spans, with exactly the columns (names, types, codecs), partitioning, sort key and expiry of the
-- table the OpenTelemetry Collector contrib `clickhouseexporter` creates on ClickHouse >= 26.2, so
-- that the contrib collector, rotel, or anything else writing that schema can feed swarmlens. When a
-- collector created the table first, these statements leave it as it is, apart from the
-- deduplication setting at the end.
--
-- The skip indexes differ from the contrib DDL's on purpose: they were a third of the table's
-- size. Measured at 1M tasks on 3 days of spans (305k, message content removed, merged):
-- 91.6 bytes/span with the contrib indexes, 68.4 without `idx_span_attr_items`, 61.9 with the
-- TraceId bloom filter as well.
--   * no text index on the `key=value` items of SpanAttributes (contrib `idx_span_attr_items`,
--     27 bytes/span): swarmlens never searches attributes by value in raw spans (the reporter reads
--     the derived tables). The ALIAS column `SpanAttributeItems` stays, so such a query still runs,
--     by scanning;
--   * `idx_trace_id` is a bloom filter, not a text index (6.5 bytes/span less); the task
--     waterfall (`task_spans.sql`, one trace by id) measured no slower (54 against 61 ms p50).
-- The other indexes are the contrib DDL's. A table the contrib collector created first keeps its
-- own indexes: the reporter's queries work with either set.

CREATE DATABASE IF NOT EXISTS {{otel}} {{on_cluster}};

CREATE TABLE IF NOT EXISTS {{otel}}.{{local otel_traces}} {{on_cluster}} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {{engine MergeTree()}}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{{ttl toDateTime(Timestamp)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- A collector retry re-sends an identical batch: with a deduplication window, ClickHouse drops the
-- repeated block here and in every materialized view fed by it. Replicated tables deduplicate by
-- default; a plain MergeTree needs the window, also when a collector created the table first.
ALTER TABLE {{otel}}.{{local otel_traces}} {{on_cluster}} MODIFY SETTING non_replicated_deduplication_window = 1000;

{{distributed otel otel_traces cityHash64(TraceId)}};

-- The contrib exporter's trace-id lookup: first and last span time of each trace, so that reading a
-- trace's spans can be narrowed to its time range.
CREATE TABLE IF NOT EXISTS {{otel}}.{{local otel_traces_trace_id_ts}} {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {{engine AggregatingMergeTree()}}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{{ttl toDateTime(Start)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

{{distributed otel otel_traces_trace_id_ts cityHash64(TraceId)}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{otel}}.otel_traces_trace_id_ts_mv {{on_cluster}}
TO {{otel}}.{{local otel_traces_trace_id_ts}}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM {{otel}}.{{local otel_traces}}
WHERE TraceId != ''
GROUP BY TraceId;
