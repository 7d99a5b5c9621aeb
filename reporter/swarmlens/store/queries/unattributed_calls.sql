-- Model calls in the period that reached the store without a user (spans of an instrumentation
-- that gave none, outside any swarm_user() or baggage identity): they count in every all-user
-- figure but on no user's page. Reads only the user_id column of chat_calls for the period;
-- uniqExact(span_id) counts a retried batch once, as FINAL would; another instrumentation's copy of a
-- call (duplicate_of, schema 0014) is not counted.
SELECT uniqExact(span_id) AS calls, sum(input_tokens) + sum(output_tokens) AS tokens
FROM {db:Identifier}.chat_calls
PREWHERE user_id = ''
WHERE duplicate_of = '' AND start_time >= toDateTime({start:Date}, 'UTC') AND start_time < toDateTime({end:Date}, 'UTC')
