-- Model names seen in the last 90 days, for filter menus.
SELECT DISTINCT model FROM {db:Identifier}.usage_daily WHERE day >= today() - 90 AND model != '' ORDER BY model
