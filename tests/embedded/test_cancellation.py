"""Every way of stopping a query × the query shapes that used to run to the end.

The shapes are chosen so that none would finish by itself within the test (an aggregate over 1e11
rows produces its only block at the end; a join builds its hash table first; a sleep; an INSERT ...
SELECT). Each way of stopping (KILL QUERY SYNC and ASYNC, the client disconnecting,
max_execution_time, SIGTERM of the endpoint) must end it with the engine's own cancellation:
the request answers (or the connection closes), the query id is free at once, and the endpoint
serves the next query. Bounds are loose (CI machines are shared); the issue's 1 s is measured in
docs/embedded-clickhouse.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from swarmlens_testing.polling import wait_until
from swarmlens_testing.ports import free_port

SHAPES = {
    "aggregate": "SELECT sum(number) FROM numbers(100000000000)",
    "join": "SELECT count() FROM numbers(100000000000) AS a INNER JOIN (SELECT number FROM numbers(100000000)) AS b "
            "USING number",
    "sleep": "SELECT sleepEachRow(1) FROM numbers(1000) SETTINGS max_block_size = 1",
    "insert_select": "INSERT INTO {sink} SELECT sum(number) FROM numbers(100000000000)",
}
# generous: the engine stops within ~0.1 s here; a loaded CI machine may take seconds
BOUND = 20.0


@pytest.fixture(scope="module")
def ep(clickhouse_server):
    sink = "cancel_sink_" + uuid.uuid4().hex[:6]
    requests.post(clickhouse_server.url, data=f"CREATE TABLE {sink} (n UInt64) ENGINE = MergeTree ORDER BY n".encode(),
                  timeout=60).raise_for_status()
    clickhouse_server.sink = sink
    yield clickhouse_server
    requests.post(clickhouse_server.url, data=f"DROP TABLE IF EXISTS {sink}".encode(), timeout=60)


def _start(ep, shape: str, qid: str, **params):
    """Runs the shape in a thread; returns (thread, result dict)."""
    result: dict = {}
    sql = SHAPES[shape].format(sink=getattr(ep, "sink", "sink"))

    def run():
        try:
            result["r"] = requests.post(ep.url, params={"query_id": qid, **params}, data=sql.encode(), timeout=300)
        except requests.RequestException as exc:
            result["error"] = exc
        result["at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def _running(url: str, qid: str) -> bool:
    r = requests.post(url, data=f"KILL QUERY WHERE query_id = '{qid}' TEST".encode(), timeout=30)
    return qid in r.text


def _id_free(url: str, qid: str) -> None:
    r = requests.post(url, params={"query_id": qid}, data=b"SELECT 1", timeout=60)
    assert r.status_code == 200 and r.text.strip() == "1", r.text


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("how", ["kill_sync", "kill_async", "disconnect", "max_execution_time"])
def test_each_way_of_stopping_ends_each_shape(ep, shape, how):
    qid = f"{how}-{shape}-{uuid.uuid4().hex[:6]}"
    if how == "disconnect":
        sql = SHAPES[shape].format(sink=ep.sink)
        if shape == "insert_select":
            pytest.skip("a disconnect cancels reads; an INSERT ... SELECT finishes or fails as a whole")
        sock = socket.create_connection((ep.host, ep.port))
        body = sql.encode()
        sock.sendall(f"POST /?query_id={qid} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        wait_until(lambda: _running(ep.url, qid), 30, what="the query running")
        t0 = time.monotonic()
        sock.close()
        wait_until(lambda: not _running(ep.url, qid), BOUND, what="the query stopped after the disconnect")
        stopped = time.monotonic() - t0
    elif how == "max_execution_time":
        t0 = time.monotonic()
        t, result = _start(ep, shape, qid, max_execution_time="1")
        t.join(BOUND + 5)
        assert not t.is_alive(), "max_execution_time did not stop the query"
        r = result["r"]
        assert r.headers.get("X-ClickHouse-Exception-Code") == "159" or "Code: 159" in r.text, r.text[-300:]
        stopped = result["at"] - t0 - 1
    else:
        t, result = _start(ep, shape, qid)
        wait_until(lambda: _running(ep.url, qid), 30, what="the query running")
        mode = "SYNC" if how == "kill_sync" else "ASYNC"
        t0 = time.monotonic()
        k = requests.post(ep.url, data=f"KILL QUERY WHERE query_id = '{qid}' {mode}".encode(), timeout=60)
        assert k.status_code == 200 and qid in k.text, k.text
        t.join(BOUND)
        assert not t.is_alive(), f"KILL {mode} did not stop the query"
        stopped = result["at"] - t0
        r = result["r"]
        assert "394" in (r.headers.get("X-ClickHouse-Exception-Code") or "") or "Code: 394" in r.text, r.text[-300:]
        # an aggregate killed mid-way must not hand out a partial or a complete sum as if it had finished
        assert "QUERY_WAS_CANCELLED" in r.text or r.status_code != 200 or r.text.strip() == "", r.text[-200:]
    print(f"{how} {shape}: stopped {stopped:.3f} s after")  # the figure in docs/embedded-clickhouse.md (-s)
    assert stopped < BOUND
    _id_free(ep.url, qid)
    assert requests.post(ep.url, data=b"SELECT 42", timeout=60).text.strip() == "42"


def test_one_user_cannot_take_every_engine_connection(make_endpoint):
    small = make_endpoint(pool_size=4, max_queries_per_user=2, queue_seconds=2)
    qids = [f"hog-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    threads = [_start(small, "sleep", q) for q in qids[:2]]
    for q in qids[:2]:
        wait_until(lambda q=q: _running(small.url, q), 30, what="the user's queries running")
    # the third query of the same user waits its turn, then gets 503 / Code 202
    r = requests.post(small.url, params={"query_id": qids[2]}, data=b"SELECT 1", timeout=60)
    assert r.status_code == 503 and r.headers["X-ClickHouse-Exception-Code"] == "202", r.text
    for q in qids[:2]:
        requests.post(small.url, data=f"KILL QUERY WHERE query_id = '{q}' SYNC".encode(), timeout=60)
    for t, _ in threads:
        t.join(BOUND)
        assert not t.is_alive()
    assert requests.post(small.url, data=b"SELECT 1", timeout=60).text.strip() == "1"


@pytest.mark.slow
def test_sigterm_stops_the_endpoint_with_a_query_running(tmp_path):
    port = free_port()
    env = dict(os.environ, SWARMLENS_DATA_DIR=str(tmp_path), SWARMLENS_CLICKHOUSE_PASSWORD="")
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                return requests.get(url + "/ping", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 60, what="the endpoint")
        holder = type("E", (), {"url": url, "sink": "x"})()
        t, result = _start(holder, "aggregate", "term-" + uuid.uuid4().hex[:6])
        wait_until(lambda: "term-" in requests.post(url, data=b"KILL QUERY WHERE 1 TEST", timeout=30).text, 30,
                   what="the query running")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - t0
        print(f"SIGTERM with an aggregate running: the endpoint exited {took:.2f} s after")
        assert took < 10.0 + 5.0, took  # 10 s promised; a shared CI machine gets some slack
        t.join(30)
        r = result.get("r")
        assert r is None or r.status_code != 200 or "394" in r.text or "Code:" in r.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
