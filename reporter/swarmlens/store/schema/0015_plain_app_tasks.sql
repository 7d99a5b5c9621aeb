-- Tasks of apps without an agent framework: a model call that is the root of its trace (a plain
-- OpenAI SDK app instrumented by openai-v2, genai-openai, OpenLLMetry, OpenInference, logfire ...),
-- made for a user (`enduser.id`, which the identity processor copies from `swarm_user()` or baggage,
-- or `user.id` mapped at ingest), is a task of one turn: the user's history, search, reports and
-- quotas show it like any other task. A call inside a trace whose root is something else (an HTTP
-- request span, say) belongs to that trace and is not a task of its own; a call without a user
-- stays an unattributed call.
--
-- Read from chat_calls, so another instrumentation's copy of a call (duplicate_of, migration 0014)
-- is never a second task (the root call of a trace is its task even when a copy nested in it is the
-- one that counts, duplicate_in_task: one task per trace either way), and a call the identity processor
-- marked as made in an Agents SDK task (called_in_task) never is one, whichever batch brings it: the Agents SDK's calls that openai-v2 also writes as roots of traces of their
-- own count in the Agents SDK task only. The rule is in docs/telemetry-contract.md, section 8.

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.plain_tasks_mv {{on_cluster}}
TO {{db}}.{{local tasks}}
AS SELECT
    task_id,
    span_id,
    user_id,
    session_id,
    conversation_id,
    service_name,
    start_time,
    start_time + toIntervalMillisecond(duration_ms) AS end_time,
    duration_ms,
    status,
    error_type,
    '' AS error_message,
    '' AS input,
    '' AS output,
    if(agent != '', [agent], CAST([], 'Array(String)')) AS agents,
    agent AS start_agent,
    agent AS final_agent,
    toUInt32(0) AS handoffs,
    toUInt32(1) AS turns,
    input_tokens,
    output_tokens,
    input_tokens + output_tokens AS total_tokens
FROM {{db}}.{{local chat_calls}}
WHERE parent_span_id = '' AND user_id != '' AND called_in_task = '' AND (duplicate_of = '' OR duplicate_in_task);
