"""Users and least privilege on the embedded endpoint: a matrix of role × statement kind, the
access statements (CREATE USER, GRANT, SHOW GRANTS...), the analyst's limits, sessions and KILL
per user, and `swarmlens db users`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import pytest
import requests

from swarmlens_testing.polling import wait_until

ADMIN_PW = "admin-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def dbs():
    s = uuid.uuid4().hex[:8]
    return {"raw": f"otel_{s}", "app": f"app_{s}"}


@pytest.fixture()
def ep(make_endpoint, dbs):
    ep = make_endpoint(password=ADMIN_PW, raw_db=dbs["raw"], app_db=dbs["app"])
    q(ep, f"CREATE DATABASE IF NOT EXISTS {dbs['raw']}")
    q(ep, f"CREATE DATABASE IF NOT EXISTS {dbs['app']}")
    for db, table in ((dbs["raw"], "otel_traces"), (dbs["app"], "tasks"), (dbs["app"], "ops_accounts"),
                      (dbs["app"], "api_tokens")):
        q(ep, f"CREATE TABLE IF NOT EXISTS {db}.{table} (s String) ENGINE = MergeTree ORDER BY s")
        q(ep, f"INSERT INTO {db}.{table} VALUES ('a row')")
    for name, role in (("ing", "ingest"), ("rep", "reporter"), ("ana", "analyst"), ("adm", "admin")):
        q(ep, f"CREATE USER OR REPLACE {name} IDENTIFIED BY '{name}-pw' DEFAULT ROLE {role}")
    yield ep
    q(ep, f"DROP DATABASE IF EXISTS {dbs['raw']}")
    q(ep, f"DROP DATABASE IF EXISTS {dbs['app']}")


def q(ep, sql, user="default", password=None, **params):
    password = ADMIN_PW if user == "default" and password is None else (password or f"{user}-pw")
    return requests.post(ep.url, params=params, data=sql.encode(), auth=(user, password), timeout=60)


def _matrix(d):
    raw, app = d["raw"], d["app"]
    # statement -> roles allowed (besides admin, which may run everything)
    return [
        (f"SELECT count() FROM {raw}.otel_traces", {"ing", "rep", "ana"}),
        (f"SELECT count() FROM {app}.tasks", {"rep", "ana"}),
        (f"SELECT count() FROM {app}.ops_accounts", {"rep"}),
        (f"SELECT count() FROM {app}.api_tokens", {"rep"}),
        (f"SELECT * FROM merge('{app}', 'ops')", {"rep"}),
        (f"SELECT * FROM view(SELECT * FROM {app}.api_tokens)", {"rep"}),
        (f"SELECT * FROM loop({app}.ops_accounts) LIMIT 1", {"rep"}),
        (f"SELECT * FROM mergeTreeIndex({app}, ops_accounts)", {"rep"}),
        (f"WITH x AS (SELECT * FROM {app}.api_tokens) SELECT * FROM x", {"rep"}),
        ("SELECT count() FROM system.one", {"ing", "rep", "ana"}),
        (f"DESCRIBE TABLE {raw}.otel_traces", {"ing", "rep", "ana"}),
        (f"CHECK TABLE {app}.tasks", {"rep", "ana"}),
        (f"CHECK TABLE {app}.api_tokens", {"rep"}),
        (f"INSERT INTO {raw}.otel_traces VALUES ('x')", {"ing"}),
        (f"INSERT INTO {app}.tasks VALUES ('x')", {"rep"}),
        (f"INSERT INTO {app}.tasks SELECT s FROM {raw}.otel_traces", {"rep"}),
        (f"INSERT INTO {raw}.otel_traces SELECT s FROM {app}.ops_accounts", set()),
        (f"ALTER TABLE {raw}.otel_traces DELETE WHERE s = 'nothing'", set()),
        (f"DELETE FROM {app}.tasks WHERE s = 'nothing'", set()),
        (f"TRUNCATE TABLE {app}.tasks", set()),
        (f"CREATE TABLE {app}.extra_{uuid.uuid4().hex[:6]} (s String) ENGINE = Memory", set()),
        (f"OPTIMIZE TABLE {app}.tasks", set()),
        ("SYSTEM DROP MARK CACHE", set()),
        ("CREATE USER intruder IDENTIFIED BY 'x'", set()),
        ("GRANT admin TO ana", set()),
        ("SET max_threads = 2", {"ing", "rep", "ana"}),
        # last: the billing record
        (f"DROP TABLE {raw}.otel_traces", set()),
    ]


def test_role_by_statement_matrix(ep, dbs):
    wrong = []
    for sql, allowed in _matrix(dbs):
        for user in ("ing", "rep", "ana"):
            r = q(ep, sql, user)
            ok = r.status_code == 200
            if ok != (user in allowed):
                wrong.append(f"{user}: {sql} -> {r.status_code} {r.text[:120]}")
            if not ok and user not in allowed:
                if r.headers.get("X-ClickHouse-Exception-Code") != "497":
                    wrong.append(f"{user}: {sql} refused with {r.headers.get('X-ClickHouse-Exception-Code')}, "
                                 f"not 497: {r.text[:120]}")
                elif "Not enough privileges" not in r.text or user not in r.text:
                    wrong.append(f"{user}: unclear refusal {r.text[:120]}")
    assert wrong == []
    # the admin may run everything, the billing record's DROP included (last)
    for sql, _ in _matrix(dbs):
        if sql.startswith(("CREATE USER", "GRANT")):
            continue
        r = q(ep, sql, "adm")
        assert r.status_code == 200, (sql, r.text)
    assert q(ep, f"EXISTS TABLE {dbs['raw']}.otel_traces").text.strip() == "0"


def test_tables_named_by_parameters_are_judged_by_their_values(ep, dbs):
    sql = "SELECT count() FROM {db:Identifier}.{t:Identifier}"
    # the same text, first with an allowed table (a verdict kept for the text would then pass the other)
    ok = q(ep, sql, "ana", param_db=dbs["app"], param_t="tasks")
    assert ok.status_code == 200, ok.text
    refused = q(ep, sql, "ana", param_db=dbs["app"], param_t="ops_accounts")
    assert refused.status_code == 403 and "ops_accounts" in refused.text


def test_access_statements_and_the_users_file(ep, make_endpoint, dbs):
    assert q(ep, "SHOW USERS").text.split() == sorted(["default", "ing", "rep", "ana", "adm"])
    assert q(ep, "SHOW GRANTS FOR ana").text.strip() == "GRANT analyst TO ana"
    assert q(ep, "SHOW GRANTS", "ana").text.strip() == "GRANT analyst TO ana"
    assert q(ep, "SHOW GRANTS FOR rep", "ana").status_code == 403
    assert q(ep, "GRANT reporter TO ana").status_code == 200
    assert q(ep, "SHOW GRANTS FOR ana FORMAT JSONEachRow").json() == {"GRANTS": "GRANT analyst, reporter TO ana"}
    assert q(ep, "REVOKE reporter FROM ana").status_code == 200
    r = q(ep, "GRANT SELECT ON *.* TO ana")
    assert r.status_code == 501 and "GRANT role TO user" in r.text
    r = q(ep, "GRANT superuser TO ana")
    assert r.headers["X-ClickHouse-Exception-Code"] == "511"
    r = q(ep, "CREATE USER ana IDENTIFIED BY 'x'")
    assert r.headers["X-ClickHouse-Exception-Code"] == "493"
    assert q(ep, "CREATE USER IF NOT EXISTS ana IDENTIFIED BY 'x'").status_code == 200
    assert q(ep, "SELECT 1", "ana").status_code == 200  # IF NOT EXISTS kept the password
    # a new password takes effect at once; the old one stops working
    assert q(ep, "ALTER USER ana IDENTIFIED BY 'new-pw'").status_code == 200
    assert q(ep, "SELECT 1", "ana").status_code == 401
    assert q(ep, "SELECT 1", "ana", "new-pw").status_code == 200
    # the file holds hashes, never the password, and a new endpoint reads it
    text = open(os.path.join(ep.data_dir, "access", "users.json")).read()
    assert "new-pw" not in text and "scrypt" in text
    other = make_endpoint(password=ADMIN_PW, raw_db=dbs["raw"], app_db=dbs["app"])
    assert q(other, "SELECT 1", "ana", "new-pw").status_code == 200
    assert q(ep, "DROP USER ana").status_code == 200
    assert q(ep, "SELECT 1", "ana", "new-pw").status_code == 401
    assert q(ep, "DROP USER default").headers["X-ClickHouse-Exception-Code"] == "497"


def test_analyst_limits_apply_by_default_and_cannot_be_raised(ep):
    r = q(ep, "SELECT getSetting('max_execution_time'), getSetting('max_memory_usage')", "ana")
    assert r.status_code == 200 and r.text.split() == ["300", str(4 << 30)]
    assert q(ep, "SELECT getSetting('max_execution_time')", "ana", max_execution_time="10").text.strip() == "10"
    for how in ({"max_execution_time": "0"}, {"max_execution_time": "100000"}):
        r = q(ep, "SELECT 1", "ana", **how)
        assert r.headers["X-ClickHouse-Exception-Code"] == "452", r.text
    r = q(ep, "SELECT 1 SETTINGS max_memory_usage = 0", "ana")
    assert r.headers["X-ClickHouse-Exception-Code"] == "452"
    sid = uuid.uuid4().hex
    assert q(ep, "SET max_result_rows = 0", "ana", session_id=sid).headers["X-ClickHouse-Exception-Code"] == "452"
    # an admin and the other roles are not limited
    assert q(ep, "SELECT getSetting('max_execution_time')", "rep").text.strip() == "0"


def test_sessions_and_kill_belong_to_their_user(ep):
    sid = uuid.uuid4().hex
    assert q(ep, "SET max_threads = 3", "ana", session_id=sid).status_code == 200
    assert q(ep, "SELECT getSetting('max_threads')", "ana", session_id=sid).text.strip() == "3"
    # the same id from another user is a session of that user's own
    assert q(ep, "SELECT getSetting('max_threads')", "rep", session_id=sid).text.strip() != "3"
    # a user's KILL finds its own queries only; the admin's finds everyone's
    qid = "sleeper-" + uuid.uuid4().hex[:8]
    result = {}

    def sleeper():
        result["r"] = q(ep, "SELECT sleepEachRow(0.5) FROM numbers(60) SETTINGS max_block_size = 1", "rep",
                        query_id=qid)

    t = threading.Thread(target=sleeper)
    t.start()
    wait_until(lambda: qid in q(ep, f"KILL QUERY WHERE query_id = '{qid}' TEST").text, 30, what="the query running")
    assert qid not in q(ep, f"KILL QUERY WHERE query_id = '{qid}' SYNC", "ana").text
    assert qid in q(ep, f"KILL QUERY WHERE query_id = '{qid}' SYNC").text
    t.join(30)
    assert not t.is_alive() and result["r"].headers.get("X-ClickHouse-Exception-Code") == "394"


def test_db_users_command(clickhouse_server, tmp_path):
    env = dict(os.environ, SWARMLENS_CLICKHOUSE_URL=clickhouse_server.url, SWARMLENS_CLICKHOUSE_PASSWORD="",
               SWARMLENS_DATA_DIR=str(tmp_path))

    def run(*argv, stdin=None):
        return subprocess.run([sys.executable, "-m", "swarmlens.cli", "db", "users", *argv], env=env,
                              input=stdin, capture_output=True, text=True, timeout=120)

    name = "cli_" + uuid.uuid4().hex[:6]
    r = run("add", name, "--role", "analyst")
    assert r.returncode == 0, r.stderr
    password = r.stdout.split("password: ")[1].strip()
    assert requests.post(clickhouse_server.url, data=b"SELECT 1", auth=(name, password), timeout=30).status_code == 200
    r = run("list")
    assert any(line.split()[:2] == [name, "analyst"] for line in r.stdout.splitlines()), r.stdout
    assert run("grant", name, "reporter").returncode == 0
    assert any(line.split() == [name, "analyst,", "reporter"] for line in run("list").stdout.splitlines())
    assert run("password", name, "--password-stdin", stdin="chosen-pw\n").returncode == 0
    assert requests.post(clickhouse_server.url, data=b"SELECT 1", auth=(name, "chosen-pw"),
                         timeout=30).status_code == 200
    r = run("add", name, "--role", "analyst")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert run("remove", name).returncode == 0
    assert requests.post(clickhouse_server.url, data=b"SELECT 1", auth=(name, "chosen-pw"),
                         timeout=30).status_code == 401
