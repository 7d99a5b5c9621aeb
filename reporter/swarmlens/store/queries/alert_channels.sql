-- Alert channels, latest version of each; {deleted} = 1 keeps the deleted ones too.
SELECT name, plan, kind, target, secret, alerts, reports, deleted, created_at, updated_at
FROM {db:Identifier}.alert_channels FINAL
WHERE {deleted:UInt8} = 1 OR NOT deleted
ORDER BY plan, name
