-- Agent names seen in the last 90 days, for filter menus: every user's for ops ({user} = ''), the
-- caller's own otherwise, so a menu never shows an agent only someone else ran.
SELECT DISTINCT agent FROM {db:Identifier}.usage_daily
WHERE day >= today() - 90 AND agent != '' AND ({user:String} = '' OR user_id = {user:String})
ORDER BY agent
