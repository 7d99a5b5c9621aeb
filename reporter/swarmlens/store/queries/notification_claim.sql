-- The claim a key holds (the earliest, by claim_rank): its claim id.
SELECT claim_id
FROM {db:Identifier}.notification_claims FINAL
WHERE user_id = {user:String} AND month = {month:Date} AND level = {level:String} AND channel = {channel:String}
