-- Handoffs of a period: how often each agent handed a task to each other agent.
SELECT handoff_from AS from_agent, agent AS to_agent, count() AS handoffs, uniqExact(task_id) AS tasks
FROM {db:Identifier}.agent_runs FINAL
WHERE start_time >= {start:DateTime64(3)} AND start_time < {end:DateTime64(3)} AND handoff_from != ''
GROUP BY from_agent, to_agent
ORDER BY handoffs DESC, from_agent, to_agent
