"""Credentials, binding rules, clean shutdown and persistence of the embedded endpoint."""

from __future__ import annotations

import os
import signal
import stat
import socket
import subprocess
import sys
import time

import clickhouse_connect
import pytest
import requests

from swarmlens_testing.ports import free_port
from swarmlens.embedded.server import EmbeddedClickHouse


def test_password_is_required_when_configured(make_endpoint):
    ep = make_endpoint(user="ops", password="s3cret")
    assert requests.get(ep.url + "/ping").status_code == 200  # health checks stay open
    r = requests.get(ep.url, params={"query": "SELECT 1"})
    assert r.status_code == 401 and r.headers["X-ClickHouse-Exception-Code"] == "516"
    assert requests.get(ep.url, params={"query": "SELECT 1"}, auth=("ops", "wrong")).status_code == 401
    assert requests.get(ep.url, params={"query": "SELECT 1"}, auth=("ops", "s3cret")).text == "1\n"
    assert requests.get(ep.url, params={"query": "SELECT 1"},
                        headers={"X-ClickHouse-User": "ops", "X-ClickHouse-Key": "s3cret"}).text == "1\n"
    assert requests.get(ep.url, params={"query": "SELECT 1", "user": "ops", "password": "s3cret"}).text == "1\n"
    client = clickhouse_connect.get_client(dsn=ep.url, username="ops", password="s3cret")
    assert client.query("SELECT 2").result_rows == [(2,)]
    with pytest.raises(Exception):
        clickhouse_connect.get_client(dsn=ep.url, username="ops", password="nope")


def test_without_password_only_the_configured_user_is_accepted(clickhouse_server):
    ep = clickhouse_server
    assert requests.get(ep.url, params={"query": "SELECT 1"}).text == "1\n"
    assert requests.get(ep.url, params={"query": "SELECT 1"}, auth=("default", "")).text == "1\n"
    assert requests.get(ep.url, params={"query": "SELECT 1"}, auth=("mallory", "")).status_code == 401


def test_refuses_non_loopback_without_password(tmp_path):
    with pytest.raises(ValueError, match="without a password"):
        EmbeddedClickHouse(str(tmp_path / "x"), host="0.0.0.0", port=0)


def test_a_taken_port_gives_a_clear_error(clickhouse_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            EmbeddedClickHouse(clickhouse_server.data_dir, port=port).start()




def _cli_env(home) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMLENS_")}
    return {**env, "SWARMLENS_DATA_DIR": str(home)}


def _start_cli(data_dir: str, port: int, home) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--data-dir", data_dir,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_cli_env(home))
    line = proc.stdout.readline()
    assert f"http://127.0.0.1:{port}" in line, line
    assert "password in" in proc.stdout.readline()
    return proc


def test_the_command_generates_a_password_and_keeps_it(tmp_path):
    """`swarmlens clickhouse` requires credentials from its first start: a generated password, kept
    with mode 0600 in the data directory and the same after a restart."""
    port = free_port()
    proc = _start_cli(str(tmp_path / "ch"), port, tmp_path)
    try:
        path = tmp_path / "clickhouse-password"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        password = path.read_text().strip()
        url = f"http://127.0.0.1:{port}"
        r = requests.get(url, params={"query": "SELECT 1"})
        assert r.status_code == 401 and r.headers["X-ClickHouse-Exception-Code"] == "516"
        assert requests.get(url, params={"query": "SELECT 1"}, auth=("default", password)).text == "1\n"
        # every swarmlens client finds it without being told
        from swarmlens import config as config_mod
        from swarmlens.store.client import connect

        store = connect(config_mod.load({"SWARMLENS_CLICKHOUSE_URL": url}, environ={"SWARMLENS_DATA_DIR": str(tmp_path)}))
        assert store.query("SELECT 7").result_rows == [(7,)]
        store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    proc = _start_cli(str(tmp_path / "ch"), port, tmp_path)
    try:
        assert (tmp_path / "clickhouse-password").read_text().strip() == password
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_sigterm_shuts_down_cleanly_and_a_restart_finds_every_row(tmp_path):
    data_dir = str(tmp_path / "persist")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_cli(data_dir, port, tmp_path)
    requests_auth = ("default", (tmp_path / "clickhouse-password").read_text().strip())
    try:
        requests.post(url, data="CREATE TABLE p (x UInt32) ENGINE = MergeTree ORDER BY x", auth=requests_auth)
        session = requests.Session()  # a keep-alive connection left open across the shutdown
        session.auth = requests_auth
        for i in range(20):
            r = session.post(url, params={"query": "INSERT INTO p FORMAT CSV"}, data=f"{i}\n")
            assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = _start_cli(data_dir, port, tmp_path)
    try:
        assert requests.get(url, params={"query": "SELECT count(), sum(x) FROM p"},
                            auth=requests_auth).text == "20\t190\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_port_zero_prints_the_chosen_url(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--data-dir", str(tmp_path / "p0"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_cli_env(tmp_path))
    try:
        line = proc.stdout.readline()
        url = line.strip().split(" at ")[-1]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert requests.get(url + "/ping").text == "Ok.\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_requests_arriving_during_shutdown_are_answered_and_then_refused(clickhouse_server, make_endpoint):
    """A request sent on an open keep-alive connection while the endpoint stops is answered
    (with Connection: close); the next connection is refused, which collectors retry intact."""
    ep = make_endpoint()
    session = requests.Session()
    assert session.get(ep.url, params={"query": "SELECT 1"}).text == "1\n"
    import threading
    stopper = threading.Thread(target=ep.stop, kwargs={"idle_grace": 1.5})
    stopper.start()
    time.sleep(0.3)
    r = session.get(ep.url, params={"query": "SELECT 2"})  # the kept-alive connection, mid-shutdown
    assert r.text == "2\n" and r.headers.get("Connection") == "close"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(ep.url, params={"query": "SELECT 3"})
    stopper.join(timeout=10)
    assert not stopper.is_alive()
