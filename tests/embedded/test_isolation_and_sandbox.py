"""The embedded endpoint as a multi-client server: every request isolated, read-only as a server
does it, a sandbox with no way out, credentials, and the protocol details real clients rely on."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import uuid

import clickhouse_connect
import pytest
import requests

from swarmlens_testing.polling import wait_until


def _db(client) -> str:
    name = "iso_" + uuid.uuid4().hex[:8]
    client.command(f"CREATE DATABASE {name}")
    return name


@pytest.fixture(params=[1, 8], ids=["pool1", "pool8"])
def ep(request, make_endpoint):
    return make_endpoint(pool_size=request.param)


def q(ep, sql, method="POST", **params):
    if method == "GET":
        return requests.get(ep.url, params={"query": sql, **params}, timeout=30)
    return requests.post(ep.url, params=params, data=sql.encode(), timeout=30)


# -- isolation ----------------------------------------------------------------------------------

def test_readonly_request_leaves_ingest_working(ep, ch_client):
    db = _db(ch_client)
    assert q(ep, f"CREATE TABLE {db}.t (x UInt8) ENGINE = MergeTree ORDER BY x").status_code == 200
    for _ in range(3):  # every pooled connection gets its turn
        r = q(ep, "SELECT 1", "GET", readonly="1")
        assert r.status_code == 200 and r.text == "1\n"
        r = q(ep, f"INSERT INTO {db}.t VALUES (1)", readonly="1")
        assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "164"
    for i in range(8):
        r = q(ep, f"INSERT INTO {db}.t FORMAT TSV\n{i}\n")
        assert r.status_code == 200, r.text
    assert q(ep, f"SELECT count() FROM {db}.t").text == "8\n"


def test_settings_and_database_do_not_outlive_a_request(ep, ch_client):
    db = _db(ch_client)
    default_threads = q(ep, "SELECT getSetting('max_threads')").text
    assert q(ep, "SET max_threads = 1", "GET").status_code == 200
    assert q(ep, "SELECT getSetting('max_threads')", max_block_size="77").text == default_threads
    for _ in range(4):
        assert q(ep, "SELECT getSetting('max_block_size')", max_block_size="77").text == "77\n"
        assert q(ep, "SELECT getSetting('max_block_size')").text != "77\n"
        assert q(ep, "SELECT currentDatabase()", database=db).text == f"{db}\n"
        assert q(ep, "SELECT currentDatabase()").text == "default\n"
        assert q(ep, f"USE {db}").status_code == 200
        assert q(ep, "SELECT currentDatabase()").text == "default\n"
    r = requests.post(ep.url, data=b"SELECT currentDatabase()", headers={"X-ClickHouse-Database": db})
    assert r.text == f"{db}\n"


def test_concurrent_mix_of_readonly_settings_and_inserts(make_endpoint, ch_client):
    ep = make_endpoint(pool_size=4)
    db = _db(ch_client)
    q(ep, f"CREATE TABLE {db}.t (x UInt32) ENGINE = MergeTree ORDER BY x")
    errors: list[str] = []

    def worker(k: int) -> None:
        s = requests.Session()
        for i in range(25):
            if k % 3 == 0:
                r = s.get(ep.url, params={"query": "SELECT getSetting('max_threads') > 1", "readonly": "1"})
                ok = r.status_code == 200
            elif k % 3 == 1:
                r = s.get(ep.url, params={"query": "SELECT currentDatabase()", "database": db, "max_threads": "1"})
                ok = r.text == f"{db}\n"
            else:
                r = s.post(ep.url, params={"query": f"INSERT INTO {db}.t FORMAT TSV"}, data=f"{k * 100 + i}\n")
                ok = r.status_code == 200
            if not ok:
                errors.append(f"{k}/{i}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert q(ep, f"SELECT count() FROM {db}.t").text == "75\n"


def test_sessions_keep_their_own_state_and_refuse_a_concurrent_request(make_endpoint):
    ep = make_endpoint()
    sid = uuid.uuid4().hex
    assert q(ep, "SET max_block_size = 123", session_id=sid).status_code == 200
    assert q(ep, "SELECT getSetting('max_block_size')", session_id=sid).text == "123\n"
    assert q(ep, "SELECT getSetting('max_block_size')").text != "123\n"
    # readonly mixed with other settings is refused whole: the session stays writable
    r = q(ep, "SET readonly = 1, max_threads = 2", session_id=sid)
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "36"
    assert q(ep, "CREATE TEMPORARY TABLE still_writable (a Int)", session_id=sid).status_code == 200
    assert q(ep, "SET readonly = 1", session_id=sid).status_code == 200
    r = q(ep, "CREATE TEMPORARY TABLE x (a Int)", session_id=sid)
    assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "164"
    other = uuid.uuid4().hex
    slow = threading.Thread(target=q, args=(ep, "SELECT sleep(1.5)"), kwargs={"session_id": other})
    slow.start()
    time.sleep(0.4)
    r = q(ep, "SELECT 1", session_id=other)
    slow.join()
    assert r.status_code == 409 and r.headers["X-ClickHouse-Exception-Code"] == "373"


# -- read-only ------------------------------------------------------------------------------------

def test_get_is_read_only_and_readonly_levels_mean_what_they_mean(make_endpoint, ch_client):
    ep = make_endpoint()
    db = _db(ch_client)
    r = q(ep, f"CREATE TABLE {db}.g (x Int) ENGINE = Memory", "GET")
    assert r.status_code == 403 and "GET implies readonly" in r.text
    # GET is readonly=2: settings may change
    assert q(ep, "SELECT getSetting('max_threads')", "GET", max_threads="3").text == "3\n"
    assert q(ep, "SELECT 1 SETTINGS max_threads = 2", "GET").status_code == 200
    # readonly=1: no settings in the query either
    r = q(ep, "SELECT 1 SETTINGS max_threads = 2", readonly="1")
    assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "164"
    r = q(ep, "SET max_threads = 2", readonly="1")
    assert r.status_code == 403
    assert q(ep, "SHOW DATABASES", readonly="1").status_code == 200
    assert q(ep, f"CREATE TABLE {db}.p (x Int) ENGINE = Memory", readonly="2").status_code == 403
    assert q(ep, f"CREATE TABLE {db}.p (x Int) ENGINE = Memory").status_code == 200


# -- sandbox --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text("host secret\n")
    return str(path)


ESCAPES = [
    "SELECT * FROM file('{secret}', LineAsString)",
    "SELECT * FROM `file`('{secret}', LineAsString)",
    "select * from FiLe('{secret}', 'LineAsString')",
    "SELECT /* hidden */ * FROM /* x */ file /* y */ ('{secret}', LineAsString)",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM file('{secret}', LineAsString)))",
    "WITH t AS (SELECT * FROM file('{secret}', LineAsString)) SELECT * FROM t",
    "SELECT * FROM numbers(1) AS n JOIN file('{secret}', LineAsString) AS f ON 1",
    "SELECT file('{secret}')",
    "SELECT 1 WHERE 1 IN (SELECT length(file('{secret}')))",
    "SELECT 'x' INTO OUTFILE '{out}'",
    "SELECT 'x' into outfile '{out}' FORMAT CSV",
    "SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{out}'",
    "INSERT INTO FUNCTION file('{out}', CSV, 'a String') SELECT 'x'",
    "CREATE TABLE {db}.f AS file('{secret}', LineAsString)",
    "CREATE TABLE {db}.f (a String) ENGINE = File(LineAsString, '{secret}')",
    "CREATE TABLE {db}.f (a String) ENGINE = URL('http://127.0.0.1:9/x', LineAsString)",
    "CREATE TABLE {db}.f (a String) ENGINE = Executable('cat', TSV)",
    "CREATE TABLE {db}.f (a Int) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = 'local', path = '{outdir}/')",
    "CREATE VIEW {db}.v AS SELECT * FROM file('{secret}', LineAsString)",
    "CREATE MATERIALIZED VIEW {db}.mv ENGINE = Memory AS SELECT * FROM file('{secret}', LineAsString)",
    "CREATE DATABASE fs_escape ENGINE = Filesystem('/')",
    "CREATE DICTIONARY {db}.d (k UInt64, v String) PRIMARY KEY k SOURCE(FILE(PATH '{secret}' FORMAT 'TSV')) "
    "LAYOUT(FLAT()) LIFETIME(0)",
    "CREATE DICTIONARY {db}.d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(QUERY 'SELECT 1 FROM file(1)')) "
    "LAYOUT(FLAT()) LIFETIME(0)",
    "CREATE DICTIONARY {db}.d (k UInt64) PRIMARY KEY k SOURCE(EXECUTABLE(COMMAND 'cat' FORMAT 'TSV')) "
    "LAYOUT(FLAT()) LIFETIME(0)",
    "SELECT * FROM url('http://127.0.0.1:9/', LineAsString)",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "SELECT * FROM executable('cat /etc/hostname', LineAsString, 'a String')",
    "SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', LineAsString)",
    "INSERT INTO {db}.keep FROM INFILE '{secret}' FORMAT LineAsString",
    "SYSTEM SHUTDOWN",
    "SYSTEM RELOAD CONFIG",
    "BACKUP TABLE {db}.keep TO File('{out}')",
    "ATTACH TABLE {db}.a FROM '{outdir}' (a Int) ENGINE = Memory",
    "SET format_schema = '{secret}:Message'",
    "EXPLAIN SELECT * FROM file('{secret}', LineAsString)",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_the_sandbox_has_no_escape(make_endpoint, ch_client, secret_file, tmp_path, template):
    ep = make_endpoint()
    db = _db(ch_client)
    q(ep, f"CREATE TABLE {db}.keep (a String) ENGINE = MergeTree ORDER BY a")
    out = tmp_path / "written"
    sql = template.format(secret=secret_file, out=out, outdir=tmp_path, db=db)
    r = q(ep, sql)
    assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "497", (r.status_code, r.text)
    assert "host secret" not in r.text
    assert not out.exists()
    assert q(ep, "SELECT count() FROM system.databases WHERE name = 'fs_escape'").text == "0\n"


def test_the_operator_opens_one_directory(make_endpoint, tmp_path, secret_file):
    opened = tmp_path / "files"
    opened.mkdir()
    (opened / "in.csv").write_text("1,a\n2,b\n")
    ep = make_endpoint(user_files_path=str(opened))
    r = q(ep, f"SELECT count() FROM file('{opened}/in.csv', CSV, 'n Int32, s String')")
    assert r.status_code == 200 and r.text == "2\n"
    r = q(ep, f"SELECT count() FROM file('{opened}/*.csv', CSV, 'n Int32, s String')")
    assert r.status_code == 200 and r.text == "2\n"
    # relative paths would resolve against the process's working directory: refused
    assert q(ep, "SELECT count() FROM file('in.csv', CSV, 'n Int32, s String')").status_code == 403
    assert q(ep, f"SELECT * FROM file('{secret_file}', LineAsString)").status_code == 403
    assert q(ep, f"SELECT * FROM file('{opened}/../{os.path.basename(secret_file)}', LineAsString)").status_code == 403


def test_no_cors_headers_unless_configured(make_endpoint):
    ep = make_endpoint()
    r = requests.options(ep.url)
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Origin" not in q(ep, "SELECT 1").headers
    ep2 = make_endpoint(cors_origin="https://analytics.example")
    assert requests.options(ep2.url).headers["Access-Control-Allow-Origin"] == "https://analytics.example"


def test_a_password_is_required_when_set(make_endpoint):
    ep = make_endpoint(password="s3cret-pw")
    assert requests.get(ep.url, params={"query": "SELECT 1"}).status_code == 401
    assert requests.get(ep.url, params={"query": "SELECT 1"}, auth=("default", "s3cret-pw")).text == "1\n"
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port, password="s3cret-pw")
    assert client.query("SELECT 41 + 1").result_rows == [(42,)]
    client.close()


# -- protocol fidelity ----------------------------------------------------------------------------

def test_multipart_form_fields_and_external_data(make_endpoint):
    ep = make_endpoint()
    r = requests.post(ep.url, files={"query": (None, "SELECT {n:UInt8} * 2"), "param_n": (None, "21")})
    assert r.status_code == 200 and r.text == "42\n"
    r = requests.post(ep.url, params={"query": "SELECT sum(a), any(b) FROM ext", "ext_structure": "a UInt32, b String"},
                      files={"ext": ("ext.tsv", b"1\tx\n2\tx\n39\tx\n")})
    assert r.status_code == 200 and r.text == "42\tx\n", r.text
    r = requests.post(ep.url, params={"query": "SELECT count(), sum(_1) FROM ext2", "ext2_types": "Int64",
                                      "ext2_format": "CSV"}, files={"ext2": ("e.csv", b"40\n2\n")})
    assert r.text == "2\t42\n"
    # the temporary tables were this request's alone
    assert requests.post(ep.url, data="SELECT * FROM ext").status_code == 404
    # a structure that tries to sneak an engine in is refused by the sandbox
    r = requests.post(ep.url, params={"query": "SELECT * FROM e3", "e3_structure": "a String) ENGINE = File(TSV, '/etc/hostname'"},
                      files={"e3": ("e", b"x\n")})
    assert r.status_code in (400, 403)


def test_results_stream_and_a_mid_stream_error_reaches_the_client(make_endpoint):
    ep = make_endpoint()
    started = time.monotonic()
    with requests.get(ep.url, params={"query": "SELECT number, sleepEachRow(0.2) FROM numbers(10) "
                                               "SETTINGS max_block_size = 1"}, stream=True) as r:
        pieces = r.iter_content(chunk_size=None)
        first = next(pieces)
        ttfb = time.monotonic() - started
        rest = b"".join(pieces)
        whole = time.monotonic() - started
    # The first rows come while the engine still works (10 rows x 0.2 s): streamed, not buffered.
    assert first.startswith(b"0\t0\n") and ttfb < whole - 1.0, (ttfb, whole)
    assert (first + rest).count(b"\n") == 10
    r = requests.get(ep.url, params={"query": "SELECT number, sleepEachRow(0.02), throwIf(number = 20) "
                                              "FROM numbers(100) SETTINGS max_block_size = 1"})
    tag = r.headers["X-ClickHouse-Exception-Tag"]
    assert r.status_code == 200 and f"__exception__\r\n{tag}\r\n".encode() in r.content
    assert b"FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" in r.content
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port)
    with pytest.raises(Exception) as exc:
        client.query("SELECT number, sleepEachRow(0.02), throwIf(number = 20) FROM numbers(100) "
                     "SETTINGS max_block_size = 1")
    assert "395" in str(exc.value) or "throwIf" in str(exc.value) or "NON_ZERO" in str(exc.value)
    client.close()


def test_query_ids_kill_query_and_cancel_on_disconnect(make_endpoint):
    ep = make_endpoint()
    qid = "slow-" + uuid.uuid4().hex
    box: dict = {}

    def slow():
        box["r"] = requests.get(ep.url, params={"query": "SELECT sleepEachRow(0.1) FROM numbers(300) "
                                                         "SETTINGS max_block_size = 1", "query_id": qid})

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: any(r.query_id == qid for r in ep.registry.snapshot()), 10, what="the query to run")
    r = requests.get(ep.url, params={"query": "SELECT 1", "query_id": qid})
    assert r.status_code != 200 and r.headers["X-ClickHouse-Exception-Code"] == "216"
    r = requests.post(ep.url, data=f"KILL QUERY WHERE query_id = '{qid}' SYNC")
    assert r.status_code == 200 and qid in r.text and "finished" in r.text
    t.join(timeout=20)
    assert not t.is_alive()
    assert not any(x.query_id == qid for x in ep.registry.snapshot())
    # A client that goes away cancels its read.
    qid2 = "gone-" + uuid.uuid4().hex
    s = socket.create_connection(("127.0.0.1", ep.port))
    s.sendall(f"GET /?query=SELECT+sleepEachRow(0.1)+FROM+numbers(600)+SETTINGS+max_block_size=1&query_id={qid2} "
              f"HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_until(lambda: any(r.query_id == qid2 for r in ep.registry.snapshot()), 10, what="the query to run")
    s.close()
    wait_until(lambda: not any(r.query_id == qid2 for r in ep.registry.snapshot()), 20,
               what="the abandoned query to be cancelled")


def test_headers_as_a_server_sends_them(make_endpoint, ch_client):
    ep = make_endpoint()
    db = _db(ch_client)
    r = q(ep, f"CREATE TABLE {db}.h (x UInt64) ENGINE = MergeTree ORDER BY x")
    assert "X-ClickHouse-Format" not in r.headers
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port)
    summary = client.command(f"INSERT INTO {db}.h SELECT number FROM numbers(1000)")
    assert summary.written_rows == 1000  # a summary, not ''
    client.close()
    r = q(ep, f"SELECT x FROM {db}.h WHERE x % 10 = 0", wait_end_of_query="1", send_progress_in_http_headers="1")
    summary = json.loads(r.headers["X-ClickHouse-Summary"])
    assert summary["result_rows"] == "100" and int(summary["read_rows"]) == 1000
    assert int(summary["total_rows_to_read"]) >= 1000
    assert "X-ClickHouse-Progress" in r.headers and r.headers["X-ClickHouse-Format"] == "TabSeparated"
    r = requests.get(ep.url, params={"query": "SELECT 1", "enable_http_compression": "1"},
                     headers={"Accept-Encoding": "gzip;q=0"}, stream=True)
    assert "Content-Encoding" not in r.headers and r.raw.read() == b"1\n"
    r = requests.get(ep.url, params={"query": "SELECT 1", "enable_http_compression": "1"},
                     headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.headers["Content-Encoding"] == "gzip" and gzip.decompress(r.raw.read()) == b"1\n"


def test_malformed_requests_get_clean_errors(make_endpoint):
    ep = make_endpoint()
    r = q(ep, "SELECT 1 AS é")
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "62"
    r = q(ep, "SELECT 1; SELECT 2")
    assert r.status_code == 400 and "Multi-statements" in r.text
    for raw in (b"GET /?query=SELECT+1\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        s = socket.create_connection(("127.0.0.1", ep.port), timeout=10)
        s.sendall(raw)
        reply = b""
        while True:
            try:
                piece = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            reply += piece
        s.close()
        assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
    assert q(ep, "SELECT 1").text == "1\n"


def test_a_compression_bomb_is_refused_within_the_memory_bound(make_endpoint, ch_client):
    from backports import zstd

    ep = make_endpoint(max_body_bytes=64 << 20)
    db = _db(ch_client)
    q(ep, f"CREATE TABLE {db}.b (s String) ENGINE = MergeTree ORDER BY s")
    bomb = zstd.compress(b"a" * (1 << 30))  # 1 GiB of one byte, about 32 KiB on the wire
    assert len(bomb) < 64 * 1024

    def rss() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024

    before = rss()
    r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.b FORMAT LineAsString"}, data=bomb,
                      headers={"Content-Encoding": "zstd"})
    assert r.status_code == 413
    assert rss() - before < 256 << 20
    assert q(ep, f"SELECT count() FROM {db}.b").text == "0\n"


def test_clickhouse_connect_sees_a_mid_stream_error(make_endpoint):
    ep = make_endpoint()
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port)
    try:
        with pytest.raises(Exception) as exc:
            res = client.query("SELECT number, sleepEachRow(0.02), throwIf(number = 20) FROM numbers(100) "
                               "SETTINGS max_block_size = 1", settings={"wait_end_of_query": 0})
            print("ROWS", len(res.result_rows), res.summary)
        assert "NON_ZERO" in str(exc.value) or "395" in str(exc.value)
    finally:
        client.close()


@pytest.mark.parametrize("settings", [
    {"max_result_rows": "2", "result_overflow_mode": "break"},  # would cut the parse the sandbox reads
    {"max_query_size": "20"},
    {"dialect": "prql"},  # would parse the statement otherwise than it was judged
])
def test_request_settings_cannot_change_how_a_statement_is_judged(make_endpoint, secret_file, settings):
    ep = make_endpoint()
    sid = uuid.uuid4().hex
    sql = f"SELECT * FROM numbers(3) AS a, numbers(2) AS b, file('{secret_file}', LineAsString) AS c"
    r = q(ep, sql, **settings)
    assert r.status_code in (403, 400, 404) and "host secret" not in r.text
    for k, v in settings.items():
        q(ep, f"SET {k} = '{v}'", session_id=sid)
    r = q(ep, sql, session_id=sid)
    assert r.status_code in (403, 400, 404) and "host secret" not in r.text


def test_whole_result_formats_are_one_document(make_endpoint):
    """JSON, *WithNames and file formats are one result, however many blocks the engine makes."""
    ep = make_endpoint()
    r = q(ep, "SELECT number FROM numbers(300000) FORMAT JSON")
    doc = json.loads(r.content)
    assert doc["rows"] == 300000 and len(doc["data"]) == 300000
    r = q(ep, "SELECT number FROM numbers(200000) FORMAT CSVWithNames")
    assert r.text.count("number") == 1 and r.text.count("\n") == 200001
    assert r.headers["Content-Type"].endswith("header=present")
    assert q(ep, "SELECT 1 FORMAT CSV").headers["Content-Type"].endswith("header=absent")
    assert "header=" not in q(ep, "SELECT 1 FORMAT TSV").headers["Content-Type"]
    # one meta line per result, however many blocks
    r = q(ep, "SELECT number FROM numbers(5) SETTINGS max_block_size = 1 FORMAT JSONEachRowWithProgress")
    assert r.text.count('"meta"') == 1 and r.text.count('"row"') == 5
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pyarrow = None
    if pyarrow is not None:
        table = client.query_arrow("SELECT number FROM numbers(300000)")
        assert table.num_rows == 300000
    assert len(client.query("SELECT number FROM numbers(300000)").result_rows) == 300000
    client.close()


def test_session_database_external_data_and_engine_defaults(make_endpoint, ch_client):
    ep = make_endpoint()
    db = _db(ch_client)
    sid = uuid.uuid4().hex
    # a request's database is for that request; only USE changes the session's own
    assert q(ep, "SELECT currentDatabase()", session_id=sid, database=db).text == f"{db}\n"
    assert q(ep, "SELECT currentDatabase()", session_id=sid).text == "default\n"
    q(ep, f"USE {db}", session_id=sid)
    assert q(ep, "SELECT currentDatabase()", session_id=sid).text == f"{db}\n"
    # external data twice in one session: each query has its own table
    for n in (1, 2):
        r = requests.post(ep.url, params={"query": "SELECT count() FROM ext", "ext_structure": "a UInt8",
                                          "session_id": sid}, files={"ext": ("e", b"1\n" * n)})
        assert r.status_code == 200 and r.text == f"{n}\n", r.text
    # a server's defaults: no implicit SELECT, so a bare word is a syntax error
    r = q(ep, "foobar FORMAT JSON")
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "62"
    assert "formatQuerySingleLine" not in r.text
    # binary parameters as heredocs, as clickhouse-connect sends them
    r = requests.post(ep.url, data=b"SELECT hex($p$a\xff'\\$p$)")
    assert r.text == "61FF275C\n"
    # settings that name files may be sent empty, as clients echo them back
    assert q(ep, "SELECT 1", format_schema="", output_format_schema="").status_code == 200
    # an error is compressed like a result
    r = requests.get(ep.url, params={"query": "SELECT nope", "enable_http_compression": "1"},
                     headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.headers["Content-Encoding"] == "gzip" and gzip.decompress(r.raw.read()).startswith(b"Code: 47")


@pytest.mark.parametrize("layers", [{"engine", "statements"}, {"engine"}])
def test_values_in_the_query_text_take_parameters_and_calls_but_never_reach_out(make_endpoint, layers, secret_file):
    """clickhouse-connect's server-side parameters put {name:Type} into VALUES; other clients write
    now() there. The statement check reads such values and relaxes the engine layer for that request
    only; anything reaching outside keeps it (344 without the statement layer, 497 with it)."""
    ep = make_endpoint(layers=frozenset(layers))
    table = "vals_" + uuid.uuid4().hex[:8]

    def q(sql, **params):
        return requests.post(ep.url, params=params, data=sql.encode(), timeout=60)

    assert q(f"CREATE TABLE {table} (id UInt32, s String, ts DateTime) ENGINE = MergeTree ORDER BY id").ok
    assert q(f"INSERT INTO {table} VALUES (1, 'a', now())").status_code == 200
    r = q(f"INSERT INTO {table} (id, s, ts) VALUES ({{id:UInt32}}, {{s:String}}, '2020-01-01 00:00:00')",
          param_id="2", param_s="b")
    assert r.status_code == 200, r.text
    r = q(f"INSERT INTO {table} VALUES (3, file('{secret_file}'), now())")
    assert r.status_code in (400, 403) and r.headers["X-ClickHouse-Exception-Code"] in ("344", "497"), r.text
    # a client cannot switch the engine layer off: refused with the statement layer, ignored without it
    r = q(f"INSERT INTO {table} VALUES (4, file('{secret_file}'), now())", input_format_values_interpret_expressions="1")
    assert r.status_code in (400, 403), r.text
    assert q(f"SELECT id, s FROM {table} ORDER BY id FORMAT CSV").text == '1,"a"\n2,"b"\n'
    # and the pooled connections are back under the engine layer afterwards, whatever ran before
    for _ in range(4):
        got = q("SELECT getSetting('input_format_values_interpret_expressions'), "
                "getSetting('input_format_values_deduce_templates_of_expressions')").text.split()
        assert got == ["false", "false"], got
    q(f"DROP TABLE {table}")
