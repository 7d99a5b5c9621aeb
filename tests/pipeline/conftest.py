"""Helpers of the pipeline tests: free ports, a rotel launched from collector_config/rotel.env,
the embedded ClickHouse as a subprocess, the Swarm test app, and what every task must look like
in ClickHouse, computed from the scripted LLM's script."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("swarm_app.py")


from swarmlens_testing.ports import free_port  # noqa: E402  (one port never handed out twice)
from swarmlens_testing.polling import wait_until  # noqa: E402,F401  (pl.wait_until)


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class ClickHouseProcess:
    """`swarmlens clickhouse` in a subprocess: its own engine on its own data directory."""

    def __init__(self, data_dir: Path, port: int, log: Path):
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ClickHouseProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarmlens.cli", "clickhouse", "--data-dir", str(self.data_dir),
             "--port", str(self.port)], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "SWARMLENS_CLICKHOUSE_PASSWORD": ""})
        wait_until(lambda: ping(self.url) or self.proc.poll() is not None, 60, what="ClickHouse /ping")
        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture()
def start_rotel(tmp_path):
    """Starts rotel with collector_config/rotel.env for a config; stops it after the test."""
    from swarmlens.ingest.collectors import Rotel

    started = []

    def start(cfg, grpc_port: int | None = None, http_port: int | None = None) -> Rotel:
        rotel = Rotel.from_config(cfg, log=str(tmp_path / "rotel.log"),
                                  SWARMLENS_OTLP_GRPC_PORT=grpc_port or free_port(),
                                  SWARMLENS_OTLP_HTTP_PORT=http_port or free_port(),
                                  SWARMLENS_DATA_DIR=str(tmp_path / "data")).start()
        started.append(rotel)
        return rotel

    yield start
    for rotel in started:
        rotel.stop(grace=20)


def start_app(otlp_url: str, tasks: int, run: str, out: Path, pause: float = 0.0, log: Path | None = None,
              extra: tuple = ()):
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url, "OTEL_SERVICE_NAME": "pipeline-test-app",
           "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_TRACES_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    return subprocess.Popen([sys.executable, str(APP), "--tasks", str(tasks), "--run", run, "--out", str(out),
                             "--pause", str(pause), *extra], env=env, cwd=str(REPO),
                            stdout=open(log or out.with_suffix(".log"), "wb"), stderr=subprocess.STDOUT)


def finish_app(proc: subprocess.Popen, out: Path, timeout: float = 120) -> list[dict]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert rc == 0, out.with_suffix(".log").read_text()[-3000:]
    return json.loads(out.read_text())


# -- what each task must look like --------------------------------------------------------------

def expected(entry: dict) -> dict:
    """The tasks-table row and span count of one task of the test app, derived from the scripted
    LLM's script (the usage the server reports) and the scenario's path."""
    from swarmlens.demo.agents import NAMES
    from swarmlens.demo.scenarios import BY_NAME, build_script

    scenario = BY_NAME[entry["scenario"]]
    script = build_script()
    path = scenario.path(entry["stream"])
    skip_triage = len(path) < len(scenario.steps)
    input_tokens = output_tokens = 0
    for key, agent in script["agents"].items():
        replies = [r for r in agent["replies"] if r.get("when") == scenario.keyword]
        if key == "triage" and skip_triage:
            replies = replies[1:]
        for r in replies:
            if "usage" in r:
                input_tokens += r["usage"]["prompt_tokens"]
                output_tokens += r["usage"]["completion_tokens"]
    agents, stretches = [], 0
    previous = None
    for key, _ in path:
        if key != previous:
            stretches += 1
            previous = key
        if NAMES[key] not in agents:
            agents.append(NAMES[key])
    tools = sum(len(reply.get("tool_calls", [])) for _, reply in path)
    chats = len(path)
    return {"agents": agents, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "status": "error" if scenario.failing else "ok", "error_type": scenario.failing,
            "turns": chats, "handoffs": stretches - 1, "spans": 1 + stretches + chats + tools}


def check_tasks(client, cfg, ran: list[dict], run: str) -> None:
    """Every task of the run is exactly one row of the tasks table, as expected, and every span of
    it arrived exactly once."""
    db, otel = cfg["SWARMLENS_DATABASE"], cfg["SWARMLENS_OTEL_DATABASE"]
    rows = client.query(
        "SELECT user_id, count(), any(agents), any(input_tokens), any(output_tokens), any(status), "
        "any(error_type), any(turns), any(handoffs), any(task_id) FROM {db:Identifier}.tasks "
        "WHERE startsWith(user_id, {run:String}) GROUP BY user_id",
        parameters={"db": db, "run": run + "-"}).result_rows
    by_user = {r[0]: r for r in rows}
    spans = dict(client.query(
        "SELECT TraceId, count() FROM {otel:Identifier}.otel_traces WHERE TraceId IN "
        "(SELECT task_id FROM {db:Identifier}.tasks WHERE startsWith(user_id, {run:String})) GROUP BY TraceId",
        parameters={"db": db, "otel": otel, "run": run + "-"}).result_rows)
    dup_spans = client.query(
        "SELECT count() - uniqExact(SpanId) FROM {otel:Identifier}.otel_traces WHERE TraceId IN "
        "(SELECT task_id FROM {db:Identifier}.tasks WHERE startsWith(user_id, {run:String}))",
        parameters={"db": db, "otel": otel, "run": run + "-"}).result_rows[0][0]
    problems = []
    for entry in ran:
        want = expected(entry)
        row = by_user.get(entry["user_id"])
        if row is None:
            problems.append(f"{entry['user_id']} ({entry['scenario']}): no task row")
            continue
        got = {"count": row[1], "agents": list(row[2]), "input_tokens": row[3], "output_tokens": row[4],
               # error.type is fully qualified on spans (openai.InternalServerError); the app sees the class
               "status": row[5], "error_type": row[6].rsplit(".", 1)[-1], "turns": row[7], "handoffs": row[8],
               "spans": spans.get(row[9], 0)}
        want_row = {"count": 1, **want}
        if got != want_row:
            diff = {k: (got[k], want_row[k]) for k in want_row if got[k] != want_row[k]}
            problems.append(f"{entry['user_id']} ({entry['scenario']}, stream={entry['stream']}): got/want {diff}")
    extra = set(by_user) - {e["user_id"] for e in ran}
    if extra:
        problems.append(f"rows for users the app never ran: {sorted(extra)[:5]}")
    if dup_spans:
        problems.append(f"{dup_spans} spans stored twice")
    assert not problems, f"{len(problems)} of {len(ran)} tasks wrong:\n" + "\n".join(problems[:20])


def task_count(client, cfg, run: str) -> int:
    return client.query("SELECT uniqExact(user_id) FROM {db:Identifier}.tasks WHERE startsWith(user_id, {run:String})",
                        parameters={"db": cfg["SWARMLENS_DATABASE"], "run": run + "-"}).result_rows[0][0]


@pytest.fixture(scope="session")
def pl():
    """This module's helpers (tests cannot import a conftest under --import-mode=importlib)."""
    return sys.modules[__name__]


def reporter_get(client, path: str):
    """GET through a Flask test client as the reporter expects: logged in as an ops admin when
    the reporter has accounts (swarmlens.auth)."""
    return client.get(path)


@pytest.fixture(scope="module")
def migrated(fresh_databases):
    """The configuration of a module's own (otel, swarmlens) databases, migrated."""
    from swarmlens import config as config_mod
    from swarmlens.store.migrate import migrate_from_config

    cfg = config_mod.load(fresh_databases)
    migrate_from_config(cfg)
    return cfg
