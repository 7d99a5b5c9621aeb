"""The embedded ClickHouse over real HTTP: clickhouse-connect, curl-style requests, codecs,
errors, sessions, concurrency and hostile input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import clickhouse_connect
import lz4.frame
import pytest
import requests

from swarmlens.embedded import codecs


def _db(ch_client) -> str:
    name = "t_" + uuid.uuid4().hex[:10]
    ch_client.command(f"CREATE DATABASE {name}")
    return name


@pytest.mark.parametrize("compress", [True, False])
def test_clickhouse_connect_round_trips_every_type(clickhouse_url, compress):
    client = clickhouse_connect.get_client(dsn=clickhouse_url, compress=compress)
    db = _db(client)
    client.command(f"""
        CREATE TABLE {db}.t (
            id UUID, ts DateTime64(9), d64 DateTime64(3, 'UTC'), lc LowCardinality(String),
            n Nullable(Int64), arr Array(String), m Map(LowCardinality(String), String),
            `ev.Name` Array(String), `ev.Ts` Array(DateTime64(9)), f Float64, u UInt64
        ) ENGINE = MergeTree ORDER BY ts""")
    rows = [
        [uuid.UUID(int=1), dt.datetime(2026, 1, 2, 3, 4, 5, 123456), dt.datetime(2026, 5, 1, 0, 0, 0, 1000, tzinfo=dt.timezone.utc),
         "a", None, ["x", "y"], {"k": "v", "é": "ü"}, ["e1"], [dt.datetime(2026, 1, 1)], 1.5, 2**63],
        [uuid.UUID(int=2), dt.datetime(2026, 1, 3), dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc),
         "b", -7, [], {}, [], [], -0.25, 0],
    ]
    summary = client.insert(f"{db}.t", rows, column_names=["id", "ts", "d64", "lc", "n", "arr", "m", "ev.Name", "ev.Ts", "f", "u"])
    assert summary.written_rows == 2
    got = client.query(f"SELECT * FROM {db}.t ORDER BY ts").result_rows
    assert got[0][0] == uuid.UUID(int=1)
    assert got[0][1] == dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
    assert got[0][2].replace(tzinfo=dt.timezone.utc) == rows[0][2]
    assert got[0][3:] == ("a", None, ["x", "y"], {"k": "v", "é": "ü"}, ["e1"], [dt.datetime(2026, 1, 1)], 1.5, 2**63)
    assert got[1][4] == -7 and got[1][5] == [] and got[1][6] == {}
    df = client.query_df(f"SELECT lc, n FROM {db}.t ORDER BY ts")
    assert list(df["lc"]) == ["a", "b"]
    client.command(f"DROP DATABASE {db}")
    client.close()


def test_typed_parameters_are_bound_server_side(ch_client):
    hostile = "x'); DROP DATABASE default; --"
    r = ch_client.query("SELECT {s:String} AS s, {n:UInt32} + 1 AS n, {t:DateTime64(3)} AS t, {a:Array(String)} AS a",
                        parameters={"s": hostile, "n": 41, "t": dt.datetime(2026, 1, 1, 12), "a": ["p", "q"]})
    assert r.result_rows == [(hostile, 42, dt.datetime(2026, 1, 1, 12), ["p", "q"])]
    assert ch_client.query("SELECT count() FROM system.databases WHERE name = 'default'").result_rows == [(1,)]


def test_response_compression_is_negotiated(clickhouse_url):
    for enc, decode in (("lz4", lz4.frame.decompress), ("gzip", gzip.decompress)):
        r = requests.get(clickhouse_url, params={"query": "SELECT number FROM numbers(1000)", "enable_http_compression": "1"},
                         headers={"Accept-Encoding": enc}, stream=True)
        assert r.status_code == 200
        assert r.headers["Content-Encoding"] == enc
        raw = r.raw.read(decode_content=False)
        assert decode(raw).decode().split("\n")[999] == "999"
    plain = requests.get(clickhouse_url, params={"query": "SELECT 1"}, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers  # only with enable_http_compression=1, as a server does


def test_curl_style_requests_and_headers(clickhouse_url):
    assert requests.get(clickhouse_url + "/ping").text == "Ok.\n"
    r = requests.get(clickhouse_url, params={"query": "SELECT 1 AS x, 'a\tb' AS y"})
    assert r.text == "1\ta\\tb\n"
    assert r.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert r.headers["X-ClickHouse-Timezone"]
    assert r.headers["X-ClickHouse-Query-Id"]
    summary = json.loads(r.headers["X-ClickHouse-Summary"])
    assert {"read_rows", "written_rows", "elapsed_ns"} <= summary.keys()
    r = requests.post(clickhouse_url, data="SELECT number FROM numbers(2) FORMAT JSONEachRow")
    assert r.text == '{"number":0}\n{"number":1}\n'
    assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
    r = requests.get(clickhouse_url, params={"query": "SELECT 7 AS v", "default_format": "JSONCompactEachRow",
                                             "query_id": "my-query-1"})
    assert r.text == "[7]\n" and r.headers["X-ClickHouse-Query-Id"] == "my-query-1"
    # the query in the URL and the rest of it in the body, as curl users write it
    r = requests.post(clickhouse_url, params={"query": "SELECT"}, data="42 FORMAT CSV")
    assert r.text == "42\n"
    # settings as URL parameters
    r = requests.get(clickhouse_url, params={"query": "SELECT getSetting('max_threads')", "max_threads": "3"})
    assert r.text == "3\n"
    assert requests.get(clickhouse_url, params={"query": "SELECT getSetting('max_threads')"}).text != "3\n"


def test_inserts_in_any_format_and_database_parameter(clickhouse_url, ch_client):
    db = _db(ch_client)
    ch_client.command(f"CREATE TABLE {db}.kv (k String, v UInt32) ENGINE = MergeTree ORDER BY k")
    r = requests.post(clickhouse_url, params={"query": "INSERT INTO kv FORMAT CSV", "database": db}, data="a,1\nb,2\n")
    assert r.status_code == 200, r.text
    assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    r = requests.post(clickhouse_url, data=f"INSERT INTO {db}.kv FORMAT JSONEachRow\n" + '{"k":"c","v":3}\n')
    assert r.status_code == 200, r.text
    r = requests.post(clickhouse_url, data=f"INSERT INTO {db}.kv VALUES ('d', 4)")
    assert r.status_code == 200, r.text
    body = gzip.compress(b"e\t5\n")
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.kv FORMAT TSV"}, data=body,
                      headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.kv FORMAT CSV", "decompress": "1"},
                      data=codecs.native_block_encode(b"f,6\n"))
    assert r.status_code == 200, r.text
    assert ch_client.query(f"SELECT k, v FROM {db}.kv ORDER BY k").result_rows == [
        ("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)]


def test_native_compressed_response(clickhouse_url):
    r = requests.get(clickhouse_url, params={"query": "SELECT 'hello'", "compress": "1"})
    dec = codecs.NativeBlockDecoder()
    assert b"".join(dec.feed(r.content)) + b"".join(dec.finish()) == b"hello\n"


@pytest.mark.parametrize("query, code, status", [
    ("SELEC 1", 62, 400),
    ("SELECT * FROM no_such_db.no_such_table", 81, 404),
    ("SELECT no_such_function(1)", 46, 404),
    ("SELECT 1 SETTINGS no_such_setting = 1", 115, 404),
])
def test_errors_carry_clickhouse_code_and_status(clickhouse_url, query, code, status):
    r = requests.post(clickhouse_url, data=query)
    assert r.status_code == status
    assert r.headers["X-ClickHouse-Exception-Code"] == str(code)
    assert r.text.startswith(f"Code: {code}. DB::Exception: ")
    assert requests.get(clickhouse_url + "/ping").status_code == 200


def test_clickhouse_connect_reports_server_errors(ch_client):
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError) as info:
        ch_client.query("SELECT * FROM system.no_such_table")
    assert "code: 60" in str(info.value)
    assert ch_client.query("SELECT 1").result_rows == [(1,)]


def test_get_is_read_only(clickhouse_url):
    r = requests.get(clickhouse_url, params={"query": "CREATE DATABASE should_not_exist"})
    assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "164"
    assert requests.get(clickhouse_url, params={"query": "EXISTS DATABASE should_not_exist"}).text == "0\n"


def test_sessions_keep_settings_and_temporary_tables(clickhouse_url):
    sid = uuid.uuid4().hex
    assert requests.post(clickhouse_url, params={"session_id": sid}, data="SET max_threads = 1").status_code == 200
    assert requests.post(clickhouse_url, params={"session_id": sid},
                         data="CREATE TEMPORARY TABLE tmp (x UInt8)").status_code == 200
    requests.post(clickhouse_url, params={"session_id": sid}, data="INSERT INTO tmp VALUES (9)")
    assert requests.get(clickhouse_url, params={"session_id": sid, "query": "SELECT x FROM tmp"}).text == "9\n"
    assert requests.get(clickhouse_url, params={"session_id": sid,
                                                "query": "SELECT getSetting('max_threads')"}).text == "1\n"
    other = requests.get(clickhouse_url, params={"query": "SELECT x FROM tmp"})
    assert other.status_code == 404
    r = requests.get(clickhouse_url, params={"session_id": "never-seen", "session_check": "1", "query": "SELECT 1"})
    assert r.headers["X-ClickHouse-Exception-Code"] == "372"


def test_a_long_query_does_not_stall_inserts(clickhouse_url, ch_client):
    db = _db(ch_client)
    ch_client.command(f"CREATE TABLE {db}.w (x UInt64) ENGINE = MergeTree ORDER BY x")
    done = {}

    def long_query():
        t = time.perf_counter()
        requests.post(clickhouse_url, data="SELECT sum(sleepEachRow(0.5)) FROM numbers(4) SETTINGS max_block_size = 1")
        done["long"] = time.perf_counter() - t

    th = threading.Thread(target=long_query)
    th.start()
    time.sleep(0.2)
    t = time.perf_counter()
    for i in range(5):
        r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.w FORMAT CSV"}, data=f"{i}\n")
        assert r.status_code == 200
    insert_time = time.perf_counter() - t
    th.join()
    assert done["long"] >= 1.9
    assert insert_time < done["long"] / 2, (insert_time, done["long"])
    assert ch_client.query(f"SELECT count() FROM {db}.w").result_rows == [(5,)]


def test_concurrent_readers_and_writers(clickhouse_url, ch_client):
    db = _db(ch_client)
    ch_client.command(f"CREATE TABLE {db}.c (w UInt8, i UInt32) ENGINE = MergeTree ORDER BY (w, i)")
    errors = []

    def writer(w):
        try:
            c = clickhouse_connect.get_client(dsn=clickhouse_url)
            for b in range(10):
                c.insert(f"{db}.c", [[w, b * 100 + i] for i in range(100)], column_names=["w", "i"])
            c.close()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    def reader():
        try:
            c = clickhouse_connect.get_client(dsn=clickhouse_url)
            for _ in range(20):
                n = c.query(f"SELECT count() FROM {db}.c").result_rows[0][0]
                assert 0 <= n <= 4000
            c.close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ch_client.query(f"SELECT count(), uniqExact(w, i) FROM {db}.c").result_rows == [(4000, 4000)]


# --- hostile input ------------------------------------------------------------------------------

def _raw(url: str, payload: bytes, read: bool = True) -> bytes:
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(payload)
        if not read:
            return b""
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)


def test_hostile_requests_get_clean_errors_and_nothing_is_lost(clickhouse_url, ch_client):
    db = _db(ch_client)
    ch_client.command(f"CREATE TABLE {db}.keep (x UInt32) ENGINE = MergeTree ORDER BY x")
    ch_client.command(f"INSERT INTO {db}.keep VALUES (1), (2), (3)")
    q = f"/?query=INSERT+INTO+{db}.keep+FORMAT+CSV"
    # malformed chunked encoding
    resp = _raw(clickhouse_url, f"POST {q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n4\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 400")
    # a client that disconnects mid-body: nothing of it is stored
    _raw(clickhouse_url, f"POST {q} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n7\n8\n".encode(), read=False)
    _raw(clickhouse_url, f"POST {q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n9\n9\n\r\n".encode(),
         read=False)
    # a corrupted compressed block
    block = bytearray(codecs.native_block_encode(b"10\n"))
    block[0] ^= 0xFF
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.keep FORMAT CSV", "decompress": "1"},
                      data=bytes(block))
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "40"
    # garbage claiming to be lz4
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.keep FORMAT CSV"}, data=b"not lz4 at all",
                      headers={"Content-Encoding": "lz4"})
    assert r.status_code == 400
    # malformed data
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.keep FORMAT CSV"}, data=b"11\nnot a number\n")
    assert r.status_code == 400 and r.text.startswith("Code: ")
    # bytes that are not UTF-8: inside a literal the engine takes them as they are; elsewhere a syntax error
    r = requests.post(clickhouse_url, data=b"SELECT '\xff\xfe' AS s FORMAT RawBLOB")
    assert r.status_code == 200 and r.content == b"\xff\xfe"
    r = requests.post(clickhouse_url, data=b"SELECT \xff")
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "62"
    # an unknown path, a bad setting name
    assert requests.get(clickhouse_url + "/no/such/handler").status_code == 404
    assert requests.get(clickhouse_url, params={"query": "SELECT 1", "bad-setting!": "1"}).status_code == 404
    time.sleep(0.3)
    assert ch_client.query(f"SELECT groupArray(x) FROM (SELECT x FROM {db}.keep ORDER BY x)").result_rows == [([1, 2, 3],)]
    assert requests.get(clickhouse_url + "/ping").text == "Ok.\n"


def test_oversized_bodies_are_refused(make_endpoint, ch_client):
    ep = make_endpoint(max_body_bytes=1000, max_query_bytes=100)
    db = _db(ch_client)
    requests.post(ep.url, data=f"CREATE TABLE {db}.t (x String) ENGINE = MergeTree ORDER BY x")
    r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.t FORMAT TSV"}, data=b"y" * 5000 + b"\n")
    assert r.status_code == 413
    r = requests.post(ep.url, data="SELECT '" + "a" * 200 + "'")
    assert r.status_code == 400 and "Max query size exceeded" in r.text
    r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.t FORMAT TSV"}, data=b"ok\n")
    assert r.status_code == 200
    assert requests.get(ep.url, params={"query": f"SELECT x FROM {db}.t"}).text == "ok\n"


def test_server_side_insert_failures_are_retried_and_never_answered_with_an_error(make_endpoint, ch_client,
                                                                                monkeypatch):
    """A valid batch that fails for a reason of the server's is retried inside the endpoint with
    the same bytes; if it keeps failing the connection is closed rather than answered with an
    error status, since rotel re-sends an empty body after an error status."""
    from swarmlens.embedded import inserts

    monkeypatch.setattr(inserts, "RETRY_PAUSES", (0.01, 0.01))
    db = _db(ch_client)
    ch_client.command(f"CREATE TABLE {db}.m (x String) ENGINE = MergeTree ORDER BY x")
    ep = make_endpoint(pool_size=1)
    conn = ep.engine.acquire()
    real = conn.conn

    class Failing:  # the engine runs out of memory, as a loaded server may
        remaining = 0

        def __getattr__(self, name):
            return getattr(real, name)

        def send_insert(self, *a, **kw):
            if Failing.remaining:
                Failing.remaining -= 1
                raise RuntimeError("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)")
            return real.send_insert(*a, **kw)

    conn.conn = Failing()
    ep.engine.release(conn)
    body = "".join(f"row-{i}\n" for i in range(1000))
    try:
        Failing.remaining = 2  # transient: the endpoint's own retries get it through
        r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.m FORMAT TSV"}, data=body)
        assert r.status_code == 200
        assert ch_client.query(f"SELECT count() FROM {db}.m").result_rows == [(1000,)]
        Failing.remaining = 100  # persistent: no answer at all, and nothing half-stored
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(ep.url, params={"query": f"INSERT INTO {db}.m FORMAT TSV"}, data="other\n")
        Failing.remaining = 0
        r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.m FORMAT TSV"}, data="other\n")
        assert r.status_code == 200
        assert ch_client.query(f"SELECT count() FROM {db}.m").result_rows == [(1001,)]
        # bad data still gets a clear error, since re-sending it cannot succeed
        r = requests.post(ep.url, params={"query": f"INSERT INTO {db}.m FORMAT JSONEachRow"}, data="{not json")
        assert r.status_code == 400 and r.text.startswith("Code: ")
    finally:
        conn.conn = real
