-- Tasks from any instrumentation that follows the GenAI semantic conventions, not only Swarm's.
--
-- A task is a trace whose root is a GenAI workflow or agent invocation. Two kinds of root:
--
-- 1. Contract roots: an `invoke_workflow ...` span carrying the task totals (`swarm.task.*`), as
--    the Swarm instrumentation and swarmlens' OpenAI Agents SDK processor write them. Read as
--    before (tasks_mv, replaced here so that the workflow's name no longer has to be `swarm`);
--    every figure of a Swarm task is what it was.
-- 2. Foreign roots: a span without a parent whose gen_ai.operation.name (or, failing that, span
--    name) is `invoke_workflow` or `invoke_agent`, without `swarm.task.*` (for example the official
--    opentelemetry-instrumentation-genai-openai-agents). Its totals come from the spans of its
--    trace stored when the root arrives, by the counting rule of docs/telemetry-contract.md:
--    each span counted once by its SpanId (a retried batch adds nothing), tokens from model-call
--    spans (chat, text_completion, generate_content) only, a model-call span inside another one
--    (two OpenAI instrumentations at once) not counted again, agents from the invoke_agent spans in
--    the order they started, a handoff wherever the next agent differs from the previous one.
--
-- A materialized view sees only the inserted block when it names otel_traces, so the spans stored
-- earlier are read through the plain view trace_spans (found by the TraceId bloom filter); the block's
-- own spans of those traces come through the Null table foreign_root_blocks, so the totals hold
-- whether or not the block is visible in trace_spans yet, and a block without a foreign root (every
-- block of a Swarm app) costs one filter and no lookup (measured on the embedded engine, 100 Swarm
-- tasks per block, interleaved: 502 ms with these views, 526 ms without; a block of foreign traces
-- 634 ms). Spans of a foreign
-- trace that arrive after its root are not in its totals (an exporter sends a root last, since it
-- ends last); they are still in chat_calls and the rollups built from it.

CREATE VIEW IF NOT EXISTS {{db}}.trace_spans {{on_cluster}} AS
SELECT TraceId, SpanId, ParentSpanId, SpanName, Timestamp, SpanAttributes
FROM {{otel}}.otel_traces;

DROP VIEW IF EXISTS {{db}}.tasks_mv {{on_cluster}};

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
WHERE SpanName = 'invoke_workflow swarm'
   OR (startsWith(SpanName, 'invoke_workflow') AND mapContains(SpanAttributes, 'swarm.task.turns'));

-- Step 1, on every insert and cheap: the spans of the block that belong to a trace whose foreign
-- root is in the block, into a Null table (nothing is stored). A block without a foreign root gives
-- nothing, and the next view does not run at all.
CREATE TABLE IF NOT EXISTS {{db}}.{{local foreign_root_blocks}} {{on_cluster}} (
    TraceId String,
    SpanId String,
    ParentSpanId String,
    SpanName LowCardinality(String),
    Timestamp DateTime64(9),
    Duration UInt64,
    ServiceName LowCardinality(String),
    StatusCode LowCardinality(String),
    StatusMessage String,
    SpanAttributes Map(LowCardinality(String), String)
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.foreign_root_blocks_mv {{on_cluster}}
TO {{db}}.{{local foreign_root_blocks}}
AS SELECT TraceId, SpanId, ParentSpanId, SpanName, Timestamp, Duration, ServiceName, StatusCode, StatusMessage,
          SpanAttributes
FROM {{otel}}.{{local otel_traces}}
WHERE TraceId IN (SELECT TraceId FROM {{otel}}.{{local otel_traces}}
                  WHERE ParentSpanId = '' AND NOT mapContains(SpanAttributes, 'swarm.task.turns')
              AND SpanName != 'invoke_workflow swarm'
              AND (SpanAttributes['gen_ai.operation.name'] IN ('invoke_workflow', 'invoke_agent')
                   OR (SpanAttributes['gen_ai.operation.name'] = ''
                       AND (startsWith(SpanName, 'invoke_workflow') OR startsWith(SpanName, 'invoke_agent')))));

-- Step 2, only for blocks with foreign roots: the task row of each root, from the spans of its trace
-- stored before (through trace_spans) and those of the block.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.tasks_foreign_mv {{on_cluster}}
TO {{db}}.{{local tasks}}
AS SELECT
    r.TraceId AS task_id,
    r.SpanId AS span_id,
    if(r.SpanAttributes['enduser.id'] != '', r.SpanAttributes['enduser.id'], s.user_id) AS user_id,
    if(r.SpanAttributes['session.id'] != '', r.SpanAttributes['session.id'], s.session_id) AS session_id,
    if(r.SpanAttributes['gen_ai.conversation.id'] != '', r.SpanAttributes['gen_ai.conversation.id'],
       s.conversation_id) AS conversation_id,
    r.ServiceName AS service_name,
    toDateTime64(r.Timestamp, 3, 'UTC') AS start_time,
    toDateTime64(r.Timestamp + toIntervalNanosecond(r.Duration), 3, 'UTC') AS end_time,
    intDiv(r.Duration, 1000000) AS duration_ms,
    if(positionCaseInsensitive(r.StatusCode, 'error') > 0, 'error', 'ok') AS status,
    r.SpanAttributes['error.type'] AS error_type,
    r.StatusMessage AS error_message,
    '' AS input,
    '' AS output,
    arrayDistinct(s.agent_seq) AS agents,
    if(r.SpanAttributes['gen_ai.agent.name'] != '', r.SpanAttributes['gen_ai.agent.name'],
       s.agent_seq[1]) AS start_agent,
    if(empty(s.agent_seq), start_agent, s.agent_seq[-1]) AS final_agent,
    toUInt32(length(arrayFilter((a, i) -> i > 1 AND a != s.agent_seq[i - 1],
                                s.agent_seq, arrayEnumerate(s.agent_seq)))) AS handoffs,
    toUInt32(s.turns) AS turns,
    toUInt64(s.input_tokens) AS input_tokens,
    toUInt64(s.output_tokens) AS output_tokens,
    input_tokens + output_tokens AS total_tokens
FROM (
    SELECT TraceId, SpanId, SpanAttributes, ServiceName, Timestamp, Duration, StatusCode, StatusMessage
    FROM {{db}}.{{local foreign_root_blocks}}
    WHERE ParentSpanId = '' AND NOT mapContains(SpanAttributes, 'swarm.task.turns')
      AND SpanName != 'invoke_workflow swarm'
      AND (SpanAttributes['gen_ai.operation.name'] IN ('invoke_workflow', 'invoke_agent')
           OR (SpanAttributes['gen_ai.operation.name'] = ''
               AND (startsWith(SpanName, 'invoke_workflow') OR startsWith(SpanName, 'invoke_agent'))))
) AS r
LEFT JOIN (
    SELECT
        TraceId,
        -- the identity of the first span that has one (spans of other instrumentations may lack it)
        argMinIf(user, ts, user != '') AS user_id,
        argMinIf(session, ts, session != '') AS session_id,
        argMinIf(conversation, ts, conversation != '') AS conversation_id,
        arrayMap(x -> x.2, arraySort(groupArrayIf((ts, agent), is_agent AND agent != ''))) AS agent_seq,
        groupArrayIf(SpanId, is_call) AS call_ids,
        groupArrayIf(ParentSpanId, is_call) AS call_parents,
        groupArrayIf(in_tokens, is_call) AS call_in,
        groupArrayIf(out_tokens, is_call) AS call_out,
        arraySum(arrayMap((p, t) -> if(has(call_ids, p), 0, t), call_parents, call_in)) AS input_tokens,
        arraySum(arrayMap((p, t) -> if(has(call_ids, p), 0, t), call_parents, call_out)) AS output_tokens,
        arrayCount(p -> NOT has(call_ids, p), call_parents) AS turns
    FROM (
        -- one row per span, whichever copies of it arrived
        SELECT
            TraceId, SpanId,
            any(ParentSpanId) AS ParentSpanId,
            min(Timestamp) AS ts,
            any(SpanAttributes['enduser.id']) AS user,
            any(SpanAttributes['session.id']) AS session,
            any(SpanAttributes['gen_ai.conversation.id']) AS conversation,
            any(SpanAttributes['gen_ai.operation.name']) AS op,
            any(SpanName) AS name,
            any(if(SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'],
                   if(startsWith(SpanName, 'invoke_agent '), trimLeft(substring(SpanName, 13)), ''))) AS agent,
            op = 'invoke_agent' OR (op = '' AND startsWith(name, 'invoke_agent')) AS is_agent,
            op IN ('chat', 'text_completion', 'generate_content')
                OR (op = '' AND (name = 'chat' OR startsWith(name, 'chat '))) AS is_call,
            any(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS in_tokens,
            any(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS out_tokens
        FROM (
            SELECT TraceId, SpanId, ParentSpanId, SpanName, Timestamp, SpanAttributes
            FROM {{db}}.trace_spans
            WHERE TraceId IN (SELECT TraceId FROM {{db}}.{{local foreign_root_blocks}})
            UNION ALL
            SELECT TraceId, SpanId, ParentSpanId, SpanName, Timestamp, SpanAttributes
            FROM {{db}}.{{local foreign_root_blocks}}
        )
        GROUP BY TraceId, SpanId
    )
    GROUP BY TraceId
) AS s ON s.TraceId = r.TraceId;

-- Model calls by their operation, not only by the span name `chat ...`: logfire, for one, names its
-- chat spans "Chat Completion with 'gpt-4o'" and sets gen_ai.operation.name = 'chat'.
DROP VIEW IF EXISTS {{db}}.chat_calls_mv {{on_cluster}};

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
WHERE SpanName = 'chat' OR startsWith(SpanName, 'chat ')
   OR SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content');
