-- The raw spans of one task (its trace), each once, in start order: the waterfall. The task's own
-- time range narrows the read to its partitions.
SELECT SpanId AS span_id, ParentSpanId AS parent_span_id, SpanName AS name, SpanKind AS kind,
       toDateTime64(Timestamp, 6, 'UTC') AS start_time, Duration AS duration_ns, StatusCode AS status_code,
       SpanAttributes['gen_ai.operation.name'] AS operation, SpanAttributes['gen_ai.agent.name'] AS agent,
       SpanAttributes['gen_ai.tool.name'] AS tool, SpanAttributes['gen_ai.request.model'] AS model,
       toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
       toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
       SpanAttributes['swarm.handoff.to'] AS handoff_to, SpanAttributes['error.type'] AS error_type
FROM {otel:Identifier}.otel_traces
WHERE TraceId = {task:String}
  AND Timestamp >= {start:DateTime64(3)} - INTERVAL 1 HOUR AND Timestamp <= {end:DateTime64(3)} + INTERVAL 1 HOUR
ORDER BY start_time, span_id
LIMIT 1 BY span_id
LIMIT 2000
-- Each attribute above read from the whole map, not from its keys and values apart: 10 against
-- 20 ms for a task's spans (the rewrite to subcolumns reads them once per attribute).
SETTINGS optimize_functions_to_subcolumns = 0
