-- Agent names seen in the last 90 days, for filter menus.
SELECT DISTINCT agent FROM {db:Identifier}.usage_daily WHERE day >= today() - 90 AND agent != '' ORDER BY agent
