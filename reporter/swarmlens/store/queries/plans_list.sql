-- Plans with their monthly token quota and how many users are on each.
SELECT p.plan AS plan, p.display_name AS display_name, p.monthly_token_quota AS monthly_token_quota,
       p.warn_at_percent AS warn_at_percent, p.updated_at AS updated_at, countIf(u.user_id != '') AS users
FROM (SELECT * FROM {db:Identifier}.plans FINAL) AS p
LEFT JOIN (SELECT user_id, plan FROM {db:Identifier}.users FINAL) AS u ON u.plan = p.plan
GROUP BY p.plan, p.display_name, p.monthly_token_quota, p.warn_at_percent, p.updated_at
ORDER BY p.monthly_token_quota, p.plan
