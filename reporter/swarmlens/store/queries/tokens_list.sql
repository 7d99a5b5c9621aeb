-- API tokens (hashes only), optionally of one owner, newest first.
SELECT token_hash, scope, user_id, name, created_at, expires_at, updated_at, revoked
FROM {db:Identifier}.api_tokens FINAL
WHERE {owner:String} = '' OR user_id = {owner:String}
ORDER BY created_at DESC
