-- Every claim of one month: (user, level, channel).
SELECT user_id, level, channel
FROM {db:Identifier}.notification_claims FINAL
WHERE month = {month:Date}
