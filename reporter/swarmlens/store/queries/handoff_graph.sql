-- Handoffs of a period from the handoffs_daily rollup: how often each agent handed a task to each
-- other agent, and in how many tasks. {start}/{end} are midnights UTC (whole days of the rollup).
SELECT h.from_agent AS from_agent, h.to_agent AS to_agent, sum(h.handoffs) AS handoffs, sum(h.tasks) AS tasks
FROM {db:Identifier}.handoffs_daily AS h
WHERE h.day >= toDate({start:DateTime64(3)}, 'UTC') AND h.day < toDate({end:DateTime64(3)}, 'UTC')
GROUP BY from_agent, to_agent
ORDER BY handoffs DESC, from_agent, to_agent
