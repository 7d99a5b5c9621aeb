-- Notifications: where quota alerts and scheduled reports go (alert_channels), the claim taken
-- before each send (notification_claims), and what each send did (notification_deliveries).
--
-- A claim is written before anything leaves, keyed by (user_id, month, level, channel), and read
-- back with FINAL: the notifier sends only when the claim it reads is its own. The insert carries
-- insert_deduplication_token = the key, so a second claim of the same key is dropped by the server
-- (non_replicated_deduplication_window, and the replicated log on a cluster); the version
-- `claim_rank` is larger for an earlier claim, so should both rows ever be kept, the first wins.
-- A notifier that restarts finds its claims and sends nothing twice; a crash between the claim and
-- the send loses that one message rather than repeating it, and /admin/quotas shows it as
-- "claimed, no delivery recorded".

CREATE TABLE IF NOT EXISTS {{db}}.alert_channels {{on_cluster}} (
    name String,
    plan String,
    kind LowCardinality(String),
    target String,
    secret String,
    alerts Bool DEFAULT true,
    reports Bool DEFAULT false,
    deleted Bool DEFAULT false,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY name
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.notification_claims {{on_cluster}} (
    user_id String,
    month Date,
    level LowCardinality(String),
    channel String,
    claim_id String,
    claimed_at DateTime64(3, 'UTC'),
    claim_rank UInt64
) ENGINE = {{engine_everywhere ReplacingMergeTree(claim_rank)}}
ORDER BY (user_id, month, level, channel)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS {{db}}.notification_deliveries {{on_cluster}} (
    claim_id String,
    user_id String,
    month Date,
    level LowCardinality(String),
    channel String,
    kind LowCardinality(String),
    target String,
    status LowCardinality(String),
    attempts UInt8,
    detail String,
    delivered_at DateTime64(3, 'UTC')
) ENGINE = {{engine_everywhere MergeTree()}}
ORDER BY (delivered_at, user_id)
SETTINGS non_replicated_deduplication_window = 1000;
