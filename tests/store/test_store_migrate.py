"""Migrations: idempotent over real HTTP, the contrib span table exactly, the cluster rendering."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from swarmlens.cli import main
from swarmlens.store import migrate as mig
from swarmlens.store.client import MigrationError

# The contrib clickhouseexporter's traces table (ClickHouse >= 26.2 variant), as system.columns shows it.
CONTRIB_TRACES_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("ResourceAttributeItems", "Array(String)"),
    ("SpanAttributeItems", "Array(String)"),
]


def _schema(client, cfg):
    dbs = [cfg.SWARMLENS_OTEL_DATABASE, cfg.SWARMLENS_DATABASE]
    tables = client.query("SELECT database, name, engine, create_table_query FROM system.tables "
                          "WHERE database IN {dbs:Array(String)} ORDER BY database, name",
                          parameters={"dbs": dbs}).result_rows
    columns = client.query("SELECT database, table, name, type, position FROM system.columns "
                           "WHERE database IN {dbs:Array(String)} ORDER BY database, table, position",
                           parameters={"dbs": dbs}).result_rows
    return tables, columns


def test_migrate_twice_leaves_one_schema(store_config, store_client):
    first = mig.migrate_from_config(store_config)
    assert [m.label for m in first] == [m.label for m in mig.load_migrations()]
    before = _schema(store_client, store_config)
    again = mig.migrate_from_config(store_config)
    assert again == []
    assert _schema(store_client, store_config) == before
    ledger = store_client.query("SELECT version, checksum FROM {db:Identifier}.schema_migrations FINAL ORDER BY version",
                                parameters={"db": store_config.SWARMLENS_DATABASE}).result_rows
    assert ledger == [(m.version, m.checksum) for m in mig.load_migrations()]


def test_otel_traces_has_exactly_the_contrib_columns(migrated, store_client):
    rows = store_client.query("SELECT name, type FROM system.columns WHERE database = {db:String} "
                              "AND table = 'otel_traces' ORDER BY position",
                              parameters={"db": migrated.SWARMLENS_OTEL_DATABASE}).result_rows
    assert rows == CONTRIB_TRACES_COLUMNS
    ddl = store_client.query("SELECT create_table_query FROM system.tables WHERE database = {db:String} "
                             "AND name = 'otel_traces'", parameters={"db": migrated.SWARMLENS_OTEL_DATABASE}
                             ).result_rows[0][0]
    assert "PARTITION BY toDate(Timestamp)" in ddl
    assert "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)" in ddl
    assert "ttl_only_drop_parts = 1" in ddl and "non_replicated_deduplication_window = 1000" in ddl


def test_existing_span_table_gets_the_dedup_window(store_config, store_client, fresh_databases):
    """A collector that started first created otel_traces without a dedup window: migrate adds it."""
    import uuid

    from swarmlens import config

    otel = f"otel_pre_{uuid.uuid4().hex[:8]}"
    cfg = config.load({**fresh_databases, "SWARMLENS_OTEL_DATABASE": otel,
                       "SWARMLENS_DATABASE": f"sl_pre_{uuid.uuid4().hex[:8]}"})
    contrib_create = next(s for s in mig.load_migrations()[0].statements(mig.Target.from_config(cfg))
                          if s.startswith("CREATE TABLE") and ".otel_traces " in s)
    store_client.command(f"CREATE DATABASE {otel}")
    store_client.command(contrib_create.replace(", non_replicated_deduplication_window = 1000", ""))
    ddl = store_client.query(f"SHOW CREATE TABLE {otel}.otel_traces").result_rows[0][0]
    assert "non_replicated_deduplication_window" not in ddl
    try:
        mig.migrate_from_config(cfg)
        ddl = store_client.query(f"SHOW CREATE TABLE {otel}.otel_traces").result_rows[0][0]
        assert "non_replicated_deduplication_window = 1000" in ddl
    finally:
        store_client.command(f"DROP DATABASE IF EXISTS {otel}")
        store_client.command(f"DROP DATABASE IF EXISTS {cfg.SWARMLENS_DATABASE}")


def test_changed_migration_is_refused(migrated, store_client, tmp_path):
    src = resources.files("swarmlens.store").joinpath("schema")
    for f in src.iterdir():
        if f.name.endswith(".sql"):
            (tmp_path / f.name).write_text(f.read_text())
    first = sorted(tmp_path.glob("0002_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(MigrationError, match="0002_tasks changed after it was applied"):
        mig.migrate(store_client, mig.Target.from_config(migrated), mig.load_migrations(tmp_path))
    states = {s.migration.label: s.state
              for s in mig.status(store_client, mig.Target.from_config(migrated), mig.load_migrations(tmp_path))}
    assert states["0002_tasks"] == "changed" and states["0001_otel_traces"] == "applied"


def test_cli_migrate_and_status(migrated, capsys, monkeypatch):
    for key in ("SWARMLENS_OTEL_DATABASE", "SWARMLENS_DATABASE"):
        monkeypatch.setenv(key, migrated[key])
    url = migrated.SWARMLENS_CLICKHOUSE_URL
    assert main(["db", "migrate", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "0001_otel_traces" in out and "already applied" in out
    assert "schema up to date: " in out.splitlines()[-1]
    assert main(["db", "status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.count(" applied at ") == len(mig.load_migrations())


def test_cli_reports_an_unreachable_server(capsys):
    assert main(["db", "status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach ClickHouse at http://127.0.0.1:9" in capsys.readouterr().err


# --- rendering, statement splitting: no server needed ------------------------------------------


def test_split_statements_respects_quotes_and_comments():
    sql = """
    -- a comment; with a semicolon
    SELECT 'a;b', "c;d", `e;f` /* g; h */ ;
    SELECT 'it''s; fine', 'back\\'slash;';
    -- only a comment;
    ;
    """
    assert mig.split_statements(sql) == [
        """-- a comment; with a semicolon
    SELECT 'a;b', "c;d", `e;f` /* g; h */""",
        "SELECT 'it''s; fine', 'back\\'slash;'",
    ]


def test_single_server_rendering_has_no_cluster_parts():
    sql = mig.render_all(mig.Target(otel_database="o", database="d"))
    assert "{{" not in sql and "ON CLUSTER" not in sql
    assert "ENGINE = Replicated" not in sql and "ENGINE = Distributed" not in sql and "_local" not in sql
    assert "TTL " not in sql
    assert "CREATE TABLE IF NOT EXISTS `d`.tasks " in sql


def test_ttl_renders_when_configured():
    sql = mig.render_all(mig.Target(traces_ttl_days=7))
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in sql
    assert "TTL toDateTime(Start) + toIntervalDay(7)" in sql
    # derived tables are kept: only the two raw-span tables expire
    assert sql.count("TTL ") == 2


def test_cluster_rendering():
    target = mig.Target(otel_database="otel", database="swarmlens", cluster="prod")
    statements = mig.bootstrap_statements(target) + [
        s for m in mig.load_migrations() for s in m.statements(target)]
    ddl = [s for s in statements if re.search(r"^\s*(CREATE|ALTER)\b", s, re.M)]
    assert ddl and all("ON CLUSTER `prod`" in s for s in ddl)
    creates = {re.search(r"IF NOT EXISTS (\S+)", s).group(1): s for s in ddl if "CREATE TABLE" in s}
    # sharded data lives in Replicated *_local tables under Distributed tables of the usual names
    for db, name, key in [("`otel`", "otel_traces", "cityHash64(TraceId)"),
                          ("`swarmlens`", "tasks", "cityHash64(task_id)"),
                          ("`swarmlens`", "agent_runs", "cityHash64(task_id)"),
                          ("`swarmlens`", "chat_calls", "cityHash64(task_id)"),
                          ("`swarmlens`", "usage_daily", "cityHash64(user_id)"),
                          ("`swarmlens`", "tasks_daily", "cityHash64(user_id)"),
                          ("`swarmlens`", "agent_daily", "cityHash64(agent)"),
                          ("`swarmlens`", "handoffs_daily", "cityHash64(from_agent)"),
                          ("`swarmlens`", "model_daily", "cityHash64(user_id)"),
                          ("`swarmlens`", "tasks_daily_all", "rand()"),
                          ("`swarmlens`", "agent_model_daily", "rand()"),
                          ("`swarmlens`", "model_daily_all", "rand()"),
                          ("`swarmlens`", "agent_tasks", "cityHash64(task_id)"),
                          ("`swarmlens`", "task_search", "cityHash64(task_id)"),
                          ("`swarmlens`", "chat_usage_daily", "cityHash64(user_id)"),
                          ("`swarmlens`", "chat_agent_model_daily", "rand()")]:
        local = creates[f"{db}.{name}_local"]
        assert "ENGINE = Replicated" in local and "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in local
        assert f"ENGINE = Distributed(`prod`, {db}, {name}_local, {key})" in creates[f"{db}.{name}"]
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in \
        creates["`swarmlens`.tasks_local"]
    # small tables the reporter writes are replicated to every node, not sharded
    for name, version in [("feedback", "created_at"), ("users", "updated_at"), ("model_prices", "updated_at"),
                          ("schema_migrations", "applied_at")]:
        assert (f"ReplicatedReplacingMergeTree('/clickhouse/tables/all/{{database}}/{{table}}', '{{replica}}', "
                f"{version})") in creates[f"`swarmlens`.{name}"]
    # views read and write the local tables, so each node derives its own shard's rows
    views = [s for s in ddl if "MATERIALIZED VIEW" in s]
    # 19 views; agent_daily_mv is created twice (0006, and again by 0011 with fewer columns), tasks_mv
    # twice (0002, and again by 0012 for any GenAI instrumentation), chat_calls_mv four times (0003, 0012,
    # 0014 with duplicates, and 0016 without logfire's request spans of streams), model_daily_mv and
    # model_daily_all_mv twice (0006/0007, and 0014 counting originals only), and plain_tasks_mv (0015)
    assert len(views) == 26
    assert all(re.search(r"TO `\w+`\.\w+_local", v) and re.search(r"FROM `\w+`\.\w+_local", v) for v in views)
    assert not any("MergeTree" in s and "Replicated" not in s for s in ddl if "ENGINE" in s)


@pytest.mark.parametrize("bad", ["x-y", "a b", "d`; DROP", ""])
def test_names_are_checked(bad):
    with pytest.raises(MigrationError):
        mig.Target(database=bad)
    with pytest.raises(MigrationError):
        mig.Target(cluster=bad or "1 2")


def test_dry_run_prints_cluster_sql_without_a_server(capsys):
    assert main(["db", "migrate", "--dry-run", "--cluster", "prod", "--url", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert "ON CLUSTER `prod`" in out and "ENGINE = Distributed(`prod`" in out
