-- The latest vote of each voter on one task.
SELECT task_id, user_id, vote, comment, created_at
FROM {db:Identifier}.feedback FINAL
WHERE task_id = {task:String}
ORDER BY created_at DESC
