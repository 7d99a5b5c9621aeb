-- A completion logfire streams is one call. logfire writes two spans for it: its request span, which
-- ends when the stream is returned and has neither usage nor response id, and, when the stream ends,
-- a log span ("streaming response from ...", logfire.span_type = 'log') with the usage, the response id
-- and the finish reasons. The log is the call; the request span of a stream is not a call of its own,
-- so chat_calls no longer takes it: a logfire span (scope logfire.*, logfire.span_type = 'span') with no
-- usage and no response id that did not fail. A request that failed (status error) has no log and
-- stays a call; a non-streamed completion's span has its response id and stays the call it is. The
-- raw spans stay in otel_traces; rows stored before this migration are left as they are. The rule is in
-- docs/telemetry-contract.md, section 7.
--
-- The view is 0014's otherwise.

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
    WHERE (SpanName = 'chat' OR startsWith(SpanName, 'chat ')
       OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))
      AND NOT (startsWith(ScopeName, 'logfire') AND SpanAttributes['logfire.span_type'] = 'span'
             AND SpanAttributes['gen_ai.response.id'] = '' AND SpanAttributes['gen_ai.usage.input_tokens'] = ''
             AND SpanAttributes['gen_ai.usage.output_tokens'] = '' AND positionCaseInsensitive(StatusCode, 'error') = 0)
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
            WHERE (SpanName = 'chat' OR startsWith(SpanName, 'chat ')
               OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))
              AND NOT (startsWith(ScopeName, 'logfire') AND SpanAttributes['logfire.span_type'] = 'span'
                     AND SpanAttributes['gen_ai.response.id'] = '' AND SpanAttributes['gen_ai.usage.input_tokens'] = ''
                     AND SpanAttributes['gen_ai.usage.output_tokens'] = '' AND positionCaseInsensitive(StatusCode, 'error') = 0)
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
            WHERE (SpanName = 'chat' OR startsWith(SpanName, 'chat ')
               OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content'))
              AND NOT (startsWith(ScopeName, 'logfire') AND SpanAttributes['logfire.span_type'] = 'span'
                     AND SpanAttributes['gen_ai.response.id'] = '' AND SpanAttributes['gen_ai.usage.input_tokens'] = ''
                     AND SpanAttributes['gen_ai.usage.output_tokens'] = '' AND positionCaseInsensitive(StatusCode, 'error') = 0)
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
