-- The latest claims with the outcome of their delivery; status '' means claimed with no delivery
-- recorded (the sender stopped between the claim and the send). Only the deliveries of those claims
-- are read, however long the history.
WITH recent AS (
    SELECT claim_id, claimed_at, user_id, month, level, channel
    FROM {db:Identifier}.notification_claims FINAL
    ORDER BY claimed_at DESC
    LIMIT {limit:UInt32}
)
SELECT c.claimed_at AS claimed_at, c.user_id AS user_id, c.month AS month, c.level AS level,
       c.channel AS channel, d.kind AS kind, d.target AS target, d.status AS status, d.attempts AS attempts,
       d.detail AS detail, d.delivered_at AS delivered_at
FROM recent AS c
LEFT JOIN (
    SELECT * FROM {db:Identifier}.notification_deliveries
    WHERE claim_id IN (SELECT claim_id FROM recent)
) AS d ON d.claim_id = c.claim_id
ORDER BY c.claimed_at DESC, c.user_id, c.channel
