"""`swarmlens up`: one command starts the stack and serves its URLs; SIGTERM leaves nothing behind;
a taken port is named before anything starts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import clickhouse_connect
import pytest

pytestmark = pytest.mark.slow

def _descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _up_command(tmp_path, pl, *extra: str):
    ports = {"ch": pl.free_port(), "grpc": pl.free_port(), "http": pl.free_port(), "app": pl.free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMLENS_", "OTEL_"))}
    argv = [sys.executable, "-m", "swarmlens.cli", "up", "--data-dir", str(tmp_path / "data"),
            "--clickhouse-port", str(ports["ch"]), "--otlp-grpc-port", str(ports["grpc"]),
            "--otlp-http-port", str(ports["http"]), "--port", str(ports["app"]), *extra]
    return argv, env, ports


def test_up_serves_the_stack_with_demo_traffic_and_sigterm_leaves_no_process(tmp_path, pl):
    argv, env, ports = _up_command(tmp_path, pl, "--demo", "--demo-interval", "0.3",
                                   "--demo-backfill-days", "30", "--demo-backfill-tasks", "20")
    log = tmp_path / "up.out"
    proc = subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    tree: set[int] = set()
    try:
        pl.wait_until(lambda: "swarmlens is up" in log.read_text() or proc.poll() is not None, 180,
                      what="`swarmlens up` to report it is up")
        out = log.read_text()
        assert proc.poll() is None, out
        ch_url = f"http://127.0.0.1:{ports['ch']}"
        app_url = f"http://127.0.0.1:{ports['app']}"
        for url in (ch_url, app_url, f"http://127.0.0.1:{ports['http']}"):
            assert url in out, out
        assert pl.ping(ch_url)
        assert _http_status(app_url + "/") is not None and _http_status(app_url + "/") < 500
        socket.create_connection(("127.0.0.1", ports["grpc"]), timeout=2).close()
        # The admin credentials file is where the output says, readable by its owner only.
        cred = re.search(r"in (\S+admin-credentials)", out).group(1)
        assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
        creds = dict(line.split("=", 1) for line in open(cred).read().splitlines() if "=" in line)
        # The ClickHouse endpoint has a generated password, kept in the data directory (0600) and
        # printed as a ready curl line; without it the endpoint answers 516.
        pw_path = str(tmp_path / "data" / "clickhouse-password")
        assert stat.S_IMODE(os.stat(pw_path).st_mode) == 0o600
        ch_password = open(pw_path).read().strip()
        assert len(ch_password) >= 24 and f"$(cat {pw_path})" in out
        denied = urllib.request.Request(ch_url + "/?query=SELECT+1")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(denied, timeout=10)
        assert refused.value.code == 401 and refused.value.headers["X-ClickHouse-Exception-Code"] == "516"
        ch_dsn = f"http://default:{ch_password}@127.0.0.1:{ports['ch']}"
        # The generated account is real: the reporter's accounts accept the password of the file.
        from swarmlens import auth, config as config_mod
        from swarmlens.store.client import connect

        # Every swarmlens command finds the endpoint's password in the data directory by itself.
        cfg = config_mod.load({"SWARMLENS_CLICKHOUSE_URL": f"http://127.0.0.1:{ports['ch']}"},
                              environ={"SWARMLENS_DATA_DIR": str(tmp_path / "data")})
        store = connect(cfg)
        try:
            assert auth.check_ops_password(store, cfg, creds["username"], creds["password"])
        finally:
            store.close()
        # Demo traffic flows through the OTLP receiver into the tasks table: backfilled and live tasks.
        client = clickhouse_connect.get_client(dsn=ch_dsn)
        try:
            counts = pl.wait_until(lambda: (lambda r: r if r[0] >= 20 and r[1] >= 2 else None)(client.query(
                "SELECT countIf(start_time < now() - INTERVAL 1 HOUR), countIf(start_time >= now() - INTERVAL 1 HOUR) "
                "FROM swarmlens.tasks").result_rows[0]), 90, what="backfilled and live demo tasks")
            assert counts[0] == 20
            # the Agents SDK demo runs beside the Swarm one
            pl.wait_until(lambda: client.query("SELECT count() FROM swarmlens.tasks WHERE service_name = "
                                               "'swarmlens-demo-agents'").result_rows[0][0] >= 1, 90,
                          what="an Agents SDK demo task")
            # ... and the reporter served by `up` shows them: an ops token reads a demo user's history.
            user = client.query("SELECT user_id FROM swarmlens.tasks GROUP BY user_id ORDER BY count() DESC "
                                "LIMIT 1").result_rows[0][0]
            # the demo brought prices and plans, so cost and quotas show something real
            assert client.query("SELECT groupArray(model) FROM (SELECT model FROM swarmlens.model_prices FINAL "
                                "ORDER BY model)").result_rows == [(["gpt-4o", "gpt-4o-mini"],)]
            assert client.query("SELECT count() FROM swarmlens.users FINAL WHERE plan != ''").result_rows[0][0] == 12
            n_user = client.query("SELECT count() FROM swarmlens.tasks FINAL WHERE user_id = {u:String}",
                                  parameters={"u": user}).result_rows[0][0]
        finally:
            client.close()
        made = subprocess.run([sys.executable, "-m", "swarmlens.cli", "users", "token", "create", "--ops", "admin"],
                              env={**env, "SWARMLENS_CLICKHOUSE_URL": ch_url, "SWARMLENS_DATA_DIR": str(tmp_path / "data")},
                              capture_output=True, text=True,
                              timeout=60)
        assert made.returncode == 0, made.stderr
        req = urllib.request.Request(f"{app_url}/api/v1/users/{user}/tasks?limit=200",
                                     headers={"Authorization": "Bearer " + made.stdout.strip().splitlines()[-1]})
        with urllib.request.urlopen(req, timeout=30) as r:
            listed = json.loads(r.read())["tasks"]
        # Live demo traffic keeps arriving: the listing lies between the counts taken before and after it.
        client = clickhouse_connect.get_client(dsn=ch_dsn)
        try:
            n_after = client.query("SELECT count() FROM swarmlens.tasks FINAL WHERE user_id = {u:String}",
                                   parameters={"u": user}).result_rows[0][0]
        finally:
            client.close()
        assert min(n_user, 200) <= len(listed) <= n_after, (n_user, len(listed), n_after)
        assert all(t["user_id"] == user for t in listed)
        assert len({t["task_id"] for t in listed}) == len(listed)
        tree = _descendants(proc.pid)
        assert len(tree) >= 5, tree  # clickhouse, ingest, gunicorn master + workers, demo
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    for name in ("demo", "reporter", "ingest", "clickhouse"):
        assert f"stopped {name}" in out, out
    # Reverse order: the reporter before the receiver, the receiver before ClickHouse.
    assert out.index("stopped reporter") < out.index("stopped ingest") < out.index("stopped clickhouse")
    time.sleep(0.5)
    survivors = [pid for pid in tree if _alive(pid)]
    assert not survivors, f"processes left behind: {survivors}"
    for port in ports.values():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"


def test_a_taken_port_is_named_before_anything_starts(tmp_path, pl):
    argv, env, ports = _up_command(tmp_path, pl)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["http"]))
        blocker.listen()
        started = time.monotonic()
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert f"OTLP/HTTP (--otlp-http-port) port {ports['http']}" in res.stderr and "already in use" in res.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "data" / "clickhouse").exists(), "ClickHouse started although a port was taken"
