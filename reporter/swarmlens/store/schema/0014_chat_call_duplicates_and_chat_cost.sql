-- A model call counted once by what it is, and every cost priced per call from the chat level.
--
-- 1. Duplicates. Two instrumentations may each write a span for one model response (the Agents SDK
--    processor and the official openai-v2 one, whose span is the root of a trace of its own since the
--    Agents SDK does not carry the OpenTelemetry context; OpenLLMetry or logfire nested in another
--    chat span). chat_calls keeps every span, and marks all copies but one with duplicate_of = the
--    span id of the copy that counts. Two chat spans are copies of one call when they come from the
--    same service, from two different instrumentation scopes (one instrumentation never writes two
--    spans for one call, and a provider that repeats ids then cannot merge two calls), and
--      - carry the same gen_ai.response.id, or
--      - where one of them has no id: the same model and token counts, start within 5 s of each other
--        and run at the same time (one starts before the other ends), wherever they sit: in two traces
--        (the Agents SDK beside openai-v2), one inside the other (OpenInference inside OpenLLMetry) or
--        side by side (OpenInference's beside the Swarm instrumentation's, both under the agent span).
--    Of a set of copies the one that counts is, in this order: one stored before (an earlier batch:
--    what a report already counted stays counted), one inside a task (its parent is not a model call,
--    or the identity processor marked it with the Agents SDK task it was made in), one with an
--    agent, one with a user, then the greatest span id, so the choice does not depend on the order of
--    the rows in a batch. The rule is in docs/telemetry-contract.md, section 7.
--
--    The view reads the block of otel_traces being inserted (each mention of otel_traces in a view
--    is that block) and the originals stored before through the plain view chat_call_originals, found
--    by model and minute of start (the sort key of chat_calls); no scalar subquery.
--
-- 2. Cost from the chat level. Agent runs do not always know their model (the Agents SDK's agent spans
--    had none before its processor took it from the responses, other instrumentations' have none, and
--    an agent may call several models), chat calls always do; so every cost is the sum over chat calls priced by each call's
--    model. chat_usage_daily (day, user, agent, model) and chat_agent_model_daily (day, agent, model,
--    all users) count the originals only, as do model_daily and model_daily_all from here on; a
--    report's cost by model, by agent and by user then add up to one total.
--
-- On an existing installation the new rollups are filled once from chat_calls (rows stored before
-- this migration are all originals); migrate before the collectors start, as `swarmlens up` does.

ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS scope_name LowCardinality(String);

ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS duplicate_of String CODEC(ZSTD(1));

-- Whether the copy that counts is in the same trace (a copy nested in another): the trace's root call
-- then still makes a plain app's task (migration 0015).
ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS duplicate_in_task Bool;

-- The task a call was made in when that is not its own trace: another instrumentation's span of a call
-- of an Agents SDK task, which the identity processor marks (swarm.task.id), since the SDK does not
-- carry the OpenTelemetry context into its model calls. Such a call is never a task of its own (0015).
ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS called_in_task String CODEC(ZSTD(1));

-- The session and conversation of a call, for the task a plain app's call is (migration 0015).
ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS session_id String CODEC(ZSTD(1));

ALTER TABLE {{db}}.{{local chat_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS conversation_id String CODEC(ZSTD(1));

CREATE VIEW IF NOT EXISTS {{db}}.chat_call_originals {{on_cluster}} AS
SELECT span_id, task_id, parent_span_id, service_name, scope_name, agent, user_id, model, response_id,
       input_tokens, output_tokens, start_time, duration_ms, called_in_task
FROM {{db}}.chat_calls
WHERE duplicate_of = '';

CREATE TABLE IF NOT EXISTS {{db}}.{{local chat_usage_daily}} {{on_cluster}} (
    day Date,
    user_id String,
    agent LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id, agent, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db chat_usage_daily cityHash64(user_id)}};

CREATE TABLE IF NOT EXISTS {{db}}.{{local chat_agent_model_daily}} {{on_cluster}} (
    day Date,
    agent LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    errors UInt64,
    duration_ms UInt64
) ENGINE = {{engine SummingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, agent, model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

{{distributed db chat_agent_model_daily rand()}};

INSERT INTO {{db}}.chat_usage_daily
SELECT toDate(start_time, 'UTC') AS day, user_id, agent, model, count() AS calls, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms
FROM {{db}}.chat_calls FINAL
WHERE (SELECT count() FROM {{db}}.chat_usage_daily) = 0 AND duplicate_of = ''
GROUP BY day, user_id, agent, model;

INSERT INTO {{db}}.chat_agent_model_daily
SELECT toDate(start_time, 'UTC') AS day, agent, model, count() AS calls, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, countIf(status = 'error') AS errors, sum(duration_ms) AS duration_ms
FROM {{db}}.chat_calls FINAL
WHERE (SELECT count() FROM {{db}}.chat_agent_model_daily) = 0 AND duplicate_of = ''
GROUP BY day, agent, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.chat_usage_daily_mv {{on_cluster}}
TO {{db}}.{{local chat_usage_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    user_id,
    agent,
    model,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local chat_calls}}
WHERE duplicate_of = ''
GROUP BY day, user_id, agent, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.chat_agent_model_daily_mv {{on_cluster}}
TO {{db}}.{{local chat_agent_model_daily}}
AS SELECT
    toDate(start_time, 'UTC') AS day,
    agent,
    model,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    countIf(status = 'error') AS errors,
    sum(duration_ms) AS duration_ms
FROM {{db}}.{{local chat_calls}}
WHERE duplicate_of = ''
GROUP BY day, agent, model;

DROP VIEW IF EXISTS {{db}}.model_daily_mv {{on_cluster}};

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
WHERE duplicate_of = ''
GROUP BY day, user_id, model;

DROP VIEW IF EXISTS {{db}}.model_daily_all_mv {{on_cluster}};

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
WHERE duplicate_of = ''
GROUP BY day, model;

DROP VIEW IF EXISTS {{db}}.chat_calls_mv {{on_cluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.chat_calls_mv {{on_cluster}}
TO {{db}}.{{local chat_calls}}
AS SELECT
    c.task_id AS task_id,
    c.span_id AS span_id,
    c.parent_span_id AS parent_span_id,
    c.user_id AS user_id,
    c.service_name AS service_name,
    c.agent AS agent,
    c.model AS model,
    c.response_model AS response_model,
    c.response_id AS response_id,
    c.finish_reasons AS finish_reasons,
    c.start_time AS start_time,
    c.duration_ms AS duration_ms,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    c.cache_read_input_tokens AS cache_read_input_tokens,
    c.reasoning_output_tokens AS reasoning_output_tokens,
    c.usage_estimated AS usage_estimated,
    c.status AS status,
    c.error_type AS error_type,
    c.scope_name AS scope_name,
    c.session_id AS session_id,
    c.conversation_id AS conversation_id,
    c.called_in_task AS called_in_task,
    if(w.span_id != '' AND w.best > (toUInt8(0), c.inside, c.has_agent, c.has_user, c.span_id), w.winner, '')
        AS duplicate_of,
    duplicate_of != '' AND w.winner_task = c.task_id AS duplicate_in_task
FROM (
    SELECT
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
        SpanAttributes['error.type'] AS error_type,
        ScopeName AS scope_name,
        SpanAttributes['session.id'] AS session_id,
        SpanAttributes['gen_ai.conversation.id'] AS conversation_id,
        SpanAttributes['swarm.task.id'] AS called_in_task,
        -- inside a task: under a span that is not itself a model call (a copy nested in another copy is not)
        toUInt8(SpanAttributes['swarm.task.id'] != '' OR ParentSpanId != '' AND ParentSpanId NOT IN (
                                          SELECT SpanId FROM {{otel}}.{{local otel_traces}}
                                          WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
                                             OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))) AS inside,
        toUInt8(agent != '') AS has_agent,
        toUInt8(user_id != '') AS has_user
    FROM {{otel}}.{{local otel_traces}}
    WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
       OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content')
) AS c
LEFT JOIN (
    -- per call of the block: the best of its other copies (block and stored originals) and its rank
    SELECT a.span_id AS span_id,
           argMax(b.span_id, (b.stored, b.inside, b.has_agent, b.has_user, b.span_id)) AS winner,
           argMax(b.task_id, (b.stored, b.inside, b.has_agent, b.has_user, b.span_id)) AS winner_task,
           max((b.stored, b.inside, b.has_agent, b.has_user, b.span_id)) AS best
    FROM (
        SELECT span_id, task_id, parent_span_id, service_name, scope_name, response_id, start_time, end_time,
               arrayJoin(if(response_id != '', ['i:' || response_id, key], [key])) AS match_key
        FROM (
            SELECT SpanId AS span_id, TraceId AS task_id, ParentSpanId AS parent_span_id, ServiceName AS service_name,
                   ScopeName AS scope_name, SpanAttributes['gen_ai.response.id'] AS response_id,
                   toDateTime64(Timestamp, 3, 'UTC') AS start_time,
                   toDateTime64(Timestamp + toIntervalNanosecond(Duration), 3, 'UTC') AS end_time,
                   concat('k:', if(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
                                   trimLeft(substring(SpanName, 5))),
                          '/', toString(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])),
                          '/', toString(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']))) AS key
            FROM {{otel}}.{{local otel_traces}}
            WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
               OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content')
        )
    ) AS a
    INNER JOIN (
        SELECT span_id, task_id, parent_span_id, service_name, scope_name, response_id, start_time, end_time, stored,
               inside, has_agent, has_user,
               arrayJoin(if(response_id != '', ['i:' || response_id, key], [key])) AS match_key
        FROM (
            -- the block's calls ...
            SELECT SpanId AS span_id, TraceId AS task_id, ParentSpanId AS parent_span_id, ServiceName AS service_name,
                   ScopeName AS scope_name, SpanAttributes['gen_ai.response.id'] AS response_id,
                   toDateTime64(Timestamp, 3, 'UTC') AS start_time,
                   toDateTime64(Timestamp + toIntervalNanosecond(Duration), 3, 'UTC') AS end_time, toUInt8(0) AS stored,
                   toUInt8(SpanAttributes['swarm.task.id'] != '' OR ParentSpanId != '' AND ParentSpanId NOT IN (
                                          SELECT SpanId FROM {{otel}}.{{local otel_traces}}
                                          WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
                                             OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))) AS inside,
                   toUInt8(SpanAttributes['gen_ai.agent.name'] != '') AS has_agent,
                   toUInt8(SpanAttributes['enduser.id'] != '') AS has_user,
                   concat('k:', if(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
                                   trimLeft(substring(SpanName, 5))),
                          '/', toString(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])),
                          '/', toString(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']))) AS key
            FROM {{otel}}.{{local otel_traces}}
            WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
               OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content')
            UNION ALL
            -- ... and the originals stored before, of the same models and minutes (a span sent again is
            -- not its own copy)
            SELECT span_id, task_id, parent_span_id, service_name, scope_name, response_id, start_time,
                   start_time + toIntervalMillisecond(duration_ms) AS end_time, toUInt8(1) AS stored,
                   toUInt8(parent_span_id != '' OR called_in_task != '') AS inside, toUInt8(agent != '') AS has_agent,
                   toUInt8(user_id != '') AS has_user,
                   concat('k:', model, '/', toString(input_tokens), '/', toString(output_tokens)) AS key
            FROM {{db}}.chat_call_originals
            WHERE (model, toStartOfMinute(start_time)) IN (
                      SELECT if(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
                                trimLeft(substring(SpanName, 5))),
                             arrayJoin([toStartOfMinute(toDateTime64(Timestamp, 3, 'UTC') - toIntervalSecond(5)),
                                        toStartOfMinute(toDateTime64(Timestamp, 3, 'UTC')),
                                        toStartOfMinute(toDateTime64(Timestamp, 3, 'UTC') + toIntervalSecond(5))])
                      FROM {{otel}}.{{local otel_traces}}
                      WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
                         OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))
              AND span_id NOT IN (SELECT SpanId FROM {{otel}}.{{local otel_traces}})
        )
    ) AS b ON b.match_key = a.match_key
    WHERE b.span_id != a.span_id AND b.service_name = a.service_name AND b.scope_name != a.scope_name
      AND (startsWith(a.match_key, 'i:')
           OR ((a.response_id = '' OR b.response_id = '')
               AND abs(dateDiff('millisecond', a.start_time, b.start_time)) <= 5000
               AND a.start_time <= b.end_time AND b.start_time <= a.end_time))
    GROUP BY a.span_id
) AS w ON w.span_id = c.span_id;
