-- One configured user with their plan: the account half of quota_status, for one user's page, which
-- sums the month's usage from the daily rows it draws anyway (users.user_quota_of). Reads only the
-- users and plans tables, so its result stays reusable while spans arrive.
SELECT u.user_id AS user_id, u.display_name AS display_name, u.email AS email, u.plan AS plan,
       p.display_name AS plan_name, p.monthly_token_quota AS quota, p.warn_at_percent AS warn_at_percent
FROM (
    SELECT user_id, display_name, email, plan FROM {db:Identifier}.users FINAL WHERE user_id = {user:String}
) AS u
LEFT JOIN (
    SELECT plan, display_name, monthly_token_quota, warn_at_percent FROM {db:Identifier}.plans FINAL
) AS p ON p.plan = u.plan
