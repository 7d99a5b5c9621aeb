-- Tokens per user in a period (tasks_daily, task level): the comparison column of the usage
-- reports' user table, which needs nothing else of the previous period (tasks_by_user's tokens).
SELECT x.user_id AS user_id, sum(x.input_tokens + x.output_tokens) AS tokens
FROM {db:Identifier}.tasks_daily AS x
WHERE x.day >= {start:Date} AND x.day < {end:Date}
GROUP BY x.user_id
