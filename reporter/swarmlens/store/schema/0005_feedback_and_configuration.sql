-- Rows the reporter writes itself: feedback and configuration. Each table is a ReplacingMergeTree
-- keyed by what identifies a row, with a version column, so an edit is an insert of the new row:
-- read with FINAL (or argMax by the version) to see the latest one. In the cluster variant these
-- small tables are replicated to every node (not sharded), so joins with them stay local.

CREATE TABLE IF NOT EXISTS {{db}}.feedback {{on_cluster}} (
    task_id String,
    user_id String,
    vote Int8,
    comment String CODEC(ZSTD(3)),
    created_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
) ENGINE = {{engine_everywhere ReplacingMergeTree(created_at)}}
ORDER BY (task_id, user_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.plans {{on_cluster}} (
    plan String,
    display_name String,
    monthly_token_quota UInt64,
    warn_at_percent UInt8 DEFAULT 80,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY plan
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.users {{on_cluster}} (
    user_id String,
    display_name String,
    email String,
    plan String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY user_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.model_prices {{on_cluster}} (
    model String,
    usd_per_1m_input Decimal(18, 6),
    usd_per_1m_output Decimal(18, 6),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY model
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.ops_accounts {{on_cluster}} (
    login String,
    password_hash String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    disabled Bool DEFAULT false
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY login
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.api_tokens {{on_cluster}} (
    token_hash String,
    scope LowCardinality(String),
    user_id String,
    name String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    expires_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    revoked Bool DEFAULT false
) ENGINE = {{engine_everywhere ReplacingMergeTree(updated_at)}}
ORDER BY token_hash
SETTINGS non_replicated_deduplication_window = 1000;
