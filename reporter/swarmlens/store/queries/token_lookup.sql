-- A bearer token by the SHA-256 of its text (the table's key).
SELECT token_hash, scope, user_id, name, created_at, expires_at, updated_at, revoked
FROM {db:Identifier}.api_tokens FINAL
WHERE token_hash = {token_hash:String}
