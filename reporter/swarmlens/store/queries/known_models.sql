-- Model names seen in the last 90 days, for the ops pages' filter menus (the all-user rollup
-- agent_model_daily, schema 0007: a row per day, agent and model).
SELECT DISTINCT model FROM {db:Identifier}.agent_model_daily WHERE day >= today() - 90 AND model != '' ORDER BY model
