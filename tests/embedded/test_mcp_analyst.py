"""An analyst uses the official MCP server (`mcp-clickhouse`, installed by scripts/setup.sh into
.venv-mcp) against the endpoint: it lists databases and tables and runs queries; the analyst
role refuses the credential tables and every write; the ingest user keeps inserting after it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MCP_PYTHON = os.path.join(ROOT, ".venv-mcp", "bin", "python")
pytestmark = pytest.mark.skipif(not os.path.exists(MCP_PYTHON), reason="run scripts/setup.sh: it installs .venv-mcp")


def test_an_analyst_through_mcp_clickhouse(make_endpoint):
    s = uuid.uuid4().hex[:8]
    raw, app, admin_pw = f"otel_{s}", f"app_{s}", "pw-" + s
    ep = make_endpoint(password=admin_pw, raw_db=raw, app_db=app)

    def admin(sql):
        r = requests.post(ep.url, data=sql.encode(), auth=("default", admin_pw), timeout=60)
        assert r.status_code == 200, r.text
        return r.text

    for sql in (f"CREATE DATABASE {raw}", f"CREATE DATABASE {app}",
                f"CREATE TABLE {raw}.otel_traces (user_id String, tokens UInt64) ENGINE = MergeTree ORDER BY user_id",
                f"CREATE TABLE {app}.ops_accounts (login String, password_hash String) ENGINE = MergeTree ORDER BY login",
                f"INSERT INTO {raw}.otel_traces VALUES ('ana', 10), ('bo', 32), ('ana', 5)",
                f"INSERT INTO {app}.ops_accounts VALUES ('admin', 'scrypt$secret-hash')",
                "CREATE USER OR REPLACE mcp_ana IDENTIFIED BY 'ana-pw' DEFAULT ROLE analyst",
                "CREATE USER OR REPLACE mcp_ing IDENTIFIED BY 'ing-pw' DEFAULT ROLE ingest"):
        admin(sql)
    try:
        calls = [
            ["list_databases", {}],
            ["list_tables", {"database": raw}],
            ["run_query", {"query": f"SELECT user_id, sum(tokens) AS t FROM {raw}.otel_traces GROUP BY user_id "
                                    "ORDER BY user_id"}],
            ["run_query", {"query": f"SELECT * FROM {app}.ops_accounts"}],
            ["run_query", {"query": f"DROP TABLE {raw}.otel_traces"}],
        ]
        env = dict(os.environ, CLICKHOUSE_HOST=ep.host, CLICKHOUSE_PORT=str(ep.port), CLICKHOUSE_USER="mcp_ana",
                   CLICKHOUSE_PASSWORD="ana-pw", CLICKHOUSE_SECURE="false", CLICKHOUSE_VERIFY="false",
                   CLICKHOUSE_ALLOW_WRITE_ACCESS="true", CLICKHOUSE_ALLOW_DROP="true")
        out = subprocess.run([MCP_PYTHON, os.path.join(os.path.dirname(__file__), "mcp_session.py"), json.dumps(calls)],
                             env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        assert {"list_databases", "list_tables", "run_query"} <= set(lines[0]["tools"])
        dbs, tables, query, creds, drop = lines[1:]
        assert raw in dbs["text"] and app in dbs["text"]
        assert "otel_traces" in tables["text"]
        assert json.loads(query["text"])["rows"] == [["ana", 15], ["bo", 32]]
        # the server's refusals reach the analyst through the MCP server
        assert "497" in creds["text"] and "secret-hash" not in creds["text"]
        assert "497" in drop["text"] or "not allowed" in drop["text"].lower()
    finally:
        admin("DROP USER IF EXISTS mcp_ana")
    # the billing record is intact, and the ingest user keeps inserting
    assert admin(f"SELECT count() FROM {raw}.otel_traces").strip() == "3"
    r = requests.post(ep.url, params={"query": f"INSERT INTO {raw}.otel_traces FORMAT JSONEachRow"},
                      data=b'{"user_id": "cy", "tokens": 7}\n', auth=("mcp_ing", "ing-pw"), timeout=60)
    assert r.status_code == 200, r.text
    assert admin(f"SELECT count() FROM {raw}.otel_traces").strip() == "4"
    admin("DROP USER IF EXISTS mcp_ing")
    admin(f"DROP DATABASE {raw}")
    admin(f"DROP DATABASE {app}")
