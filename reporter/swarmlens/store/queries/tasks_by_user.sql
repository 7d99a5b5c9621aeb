-- Task-level figures per user in a period (tasks_daily), with the cost of each user's chat calls, each
-- priced by its own model (chat_usage_daily, schema 0014). A user with model calls and no task (and
-- '' for calls without a user) is a row too, so the users' costs add up to the period's.
SELECT if(t.user_id != '', t.user_id, c.user_id) AS user_id, t.tasks AS tasks, t.input_tokens AS input_tokens, t.output_tokens AS output_tokens,
       t.tokens AS tokens, t.errors AS errors, c.cost_usd AS cost_usd
FROM (
    SELECT x.user_id AS user_id, sum(x.tasks) AS tasks, sum(x.input_tokens) AS input_tokens,
           sum(x.output_tokens) AS output_tokens, sum(x.input_tokens + x.output_tokens) AS tokens, sum(x.errors) AS errors
    FROM {db:Identifier}.tasks_daily AS x
    WHERE x.day >= {start:Date} AND x.day < {end:Date}
    GROUP BY x.user_id
) AS t
FULL OUTER JOIN (
    SELECT d.user_id AS user_id,
           sum(d.input_tokens * toFloat64(p.usd_per_1m_input) + d.output_tokens * toFloat64(p.usd_per_1m_output)) / 1e6 AS cost_usd
    FROM {db:Identifier}.chat_usage_daily AS d
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS p
        ON p.model = d.model
    WHERE d.day >= {start:Date} AND d.day < {end:Date}
    GROUP BY d.user_id
) AS c ON c.user_id = t.user_id
ORDER BY tokens DESC, user_id
LIMIT {limit:UInt32}
