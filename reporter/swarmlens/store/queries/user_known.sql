-- 1 when swarmlens knows the user: configured, or with tasks on any day.
SELECT (SELECT count() FROM {db:Identifier}.users FINAL WHERE user_id = {user:String})
     + (SELECT count() FROM {db:Identifier}.tasks_daily WHERE user_id = {user:String}) > 0 AS known
