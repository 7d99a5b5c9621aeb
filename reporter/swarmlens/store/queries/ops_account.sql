-- One ops account by login (latest version).
SELECT login, password_hash, created_at, updated_at, disabled
FROM {db:Identifier}.ops_accounts FINAL
WHERE login = {login:String}
