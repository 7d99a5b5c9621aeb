-- Agent names seen in the last 90 days by any user, for the ops pages' filter menus: known_agents
-- with {user} = '', from the all-user rollup agent_model_daily (schema 0007), a row per day, agent
-- and model instead of one per user.
SELECT DISTINCT agent FROM {db:Identifier}.agent_model_daily
WHERE day >= today() - 90 AND agent != ''
ORDER BY agent
