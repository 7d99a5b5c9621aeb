-- This month's task-level usage of every configured or active user against their plan's quota, with
-- the month's cost (chat level, each call priced by its model now). {user} = '' means every user; {alerts_only} = 1
-- keeps only the users at or over their plan's warning level (the rule of common.quota_level).
-- {with_cost} = 0 leaves the cost out (0), the larger part of the work, for a list that does not show it.
SELECT
    if(t.user_id != '', t.user_id, u.user_id) AS user_id,
    u.display_name AS display_name,
    u.email AS email,
    u.plan AS plan,
    p.display_name AS plan_name,
    p.monthly_token_quota AS quota,
    p.warn_at_percent AS warn_at_percent,
    t.tasks AS tasks,
    t.tokens AS tokens,
    t.errors AS errors,
    c.cost_usd AS cost_usd
FROM (
    SELECT x.user_id AS user_id, sum(x.tasks) AS tasks, sum(x.input_tokens + x.output_tokens) AS tokens,
           sum(x.errors) AS errors
    FROM {db:Identifier}.tasks_daily AS x
    WHERE x.day >= {start:Date} AND x.day < {end:Date} AND ({user:String} = '' OR x.user_id = {user:String})
    GROUP BY x.user_id
) AS t
FULL OUTER JOIN (
    SELECT user_id, display_name, email, plan
    FROM {db:Identifier}.users FINAL
    WHERE {user:String} = '' OR user_id = {user:String}
) AS u ON u.user_id = t.user_id
LEFT JOIN (
    SELECT plan, display_name, monthly_token_quota, warn_at_percent FROM {db:Identifier}.plans FINAL
) AS p ON p.plan = u.plan
LEFT JOIN (
    SELECT d.user_id AS user_id,
           sum(d.input_tokens * toFloat64(pr.usd_per_1m_input) + d.output_tokens * toFloat64(pr.usd_per_1m_output)) / 1e6 AS cost_usd
    FROM {db:Identifier}.chat_usage_daily AS d
    LEFT JOIN (SELECT model, usd_per_1m_input, usd_per_1m_output FROM {db:Identifier}.model_prices FINAL) AS pr
        ON pr.model = d.model
    WHERE {with_cost:UInt8} = 1 AND d.day >= {start:Date} AND d.day < {end:Date}
      AND ({user:String} = '' OR d.user_id = {user:String})
    GROUP BY d.user_id
) AS c ON c.user_id = if(t.user_id != '', t.user_id, u.user_id)
WHERE {alerts_only:UInt8} = 0
   OR (p.monthly_token_quota > 0
       AND (t.tokens >= p.monthly_token_quota
            OR t.tokens * 100 >= p.monthly_token_quota * if(p.warn_at_percent = 0, 80, p.warn_at_percent)))
ORDER BY tokens DESC, user_id
