-- User ids seen in the last 90 days or configured, for filter menus.
SELECT user_id FROM (
    SELECT DISTINCT user_id FROM {db:Identifier}.tasks_daily WHERE day >= today() - 90
    UNION DISTINCT
    SELECT user_id FROM {db:Identifier}.users FINAL
) WHERE user_id != '' ORDER BY user_id LIMIT 1000
