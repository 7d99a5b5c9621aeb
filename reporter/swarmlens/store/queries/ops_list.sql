-- Every ops account, without password hashes.
SELECT login, created_at, updated_at, disabled
FROM {db:Identifier}.ops_accounts FINAL
ORDER BY login
