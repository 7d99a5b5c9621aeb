-- One configured user (display name, e-mail, plan), latest version.
SELECT user_id, display_name, email, plan, created_at, updated_at
FROM {db:Identifier}.users FINAL
WHERE user_id = {user:String}
