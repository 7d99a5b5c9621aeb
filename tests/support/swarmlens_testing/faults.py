"""Fault injection on the single-machine stack, with sent / acknowledged / stored / lost / duplicated
counts. Used by tests/pipeline/test_crash_safety.py (short runs) and bench/bench_faults.py (the
long runs of docs/reliability.md).

``Stack`` runs `swarmlens up` on a fresh data directory and free loopback ports. ``Load`` sends
task-shaped OTLP/HTTP requests (8 spans a task, the bench's shape) at a steady rate from a thread,
retrying a request the way the OpenTelemetry SDK's exporter does (refused connection, 429/502/503/
504, timeouts; exponential backoff; given up after ``retry_window`` seconds), and records for every
request whether it was acknowledged (200). ``Load.tally`` then reads otel_traces: a span is stored
when its (TraceId, SpanId) is there; lost when acknowledged and not stored; duplicated when stored
more than once.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarmlens_testing.polling import poll, wait_until

REPO = Path(__file__).resolve().parents[1]
SPANS_PER_TASK = 8


def free_port() -> int:
    from swarmlens_testing.ports import free_port as fp

    return fp()


# -- the stack ---------------------------------------------------------------------------------

class Stack:
    """`swarmlens up` in a subprocess, on its own data directory and ports."""

    def __init__(self, data_dir: Path, log: Path, collector: str = "swarmlens", env: dict | None = None):
        self.data_dir, self.log = data_dir, log
        self.extra_env = dict(env or {})
        self.ports = {"clickhouse": free_port(), "grpc": free_port(), "http": free_port(), "reporter": free_port()}
        self.collector = collector
        self.proc: subprocess.Popen | None = None

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def clickhouse_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['clickhouse']}"

    def client(self):
        """A clickhouse-connect client with the password `up` generated in the data directory."""
        import clickhouse_connect

        from swarmlens import config as config_mod

        password = config_mod.generated_clickhouse_password(str(self.data_dir))
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.ports["clickhouse"], username="default",
                                             password=password)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMLENS_")}
        env.update(SWARMLENS_DATA_DIR=str(self.data_dir), SWARMLENS_CLICKHOUSE_URL=self.clickhouse_url,
                   SWARMLENS_COLLECTOR=self.collector, PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 180) -> "Stack":
        argv = [sys.executable, "-m", "swarmlens.cli", "up", "--clickhouse-port", str(self.ports["clickhouse"]),
                "--otlp-grpc-port", str(self.ports["grpc"]), "--otlp-http-port", str(self.ports["http"]),
                "--port", str(self.ports["reporter"]), "--workers", "1"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        offset = len(self.output())  # a restart appends to the same log
        self.proc = subprocess.Popen(argv, env=self.env(), cwd=str(REPO), stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is not None or "swarmlens is up" in self.output()[offset:], timeout,
                   what="swarmlens up to start")
        assert self.proc.poll() is None, self.output()[-3000:]
        return self

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def state(self) -> dict:
        try:
            return json.loads((self.data_dir / "up-state.json").read_text())
        except (OSError, ValueError):
            return {}

    def pid(self, name: str) -> int:
        for c in self.state().get("children", []):
            if c["name"] == name and c.get("running"):
                return c["pid"]
        raise AssertionError(f"{name} is not running: {self.state()}")

    def restarts(self, name: str) -> int:
        return next((c["restarts"] for c in self.state().get("children", []) if c["name"] == name), 0)

    def wait_restarted(self, name: str, before: int, timeout: float = 120) -> None:
        wait_until(lambda: self.restarts(name) > before and any(
            c["name"] == name and c.get("running") for c in self.state().get("children", [])), timeout,
            what=f"{name} restarted by swarmlens up")

    def kill_everything(self) -> None:
        """kill -9 of `up` and every child it runs, all at once (a power cut, the OOM killer)."""
        pids = [self.proc.pid] + [c["pid"] for c in self.state().get("children", []) if c.get("pid")]
        groups = [c["pid"] for c in self.state().get("children", []) if c.get("pid")]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pgid in groups:  # gunicorn workers and the like
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.kill_everything()

    def status(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "swarmlens.cli", "status"], env=self.env(), cwd=str(REPO),
                              capture_output=True, text=True, timeout=60)

    def db_check(self, repair: bool = False) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "swarmlens.cli", "db", "check"] + (["--repair"] if repair else [])
        return subprocess.run(argv, env=self.env(), cwd=str(REPO), capture_output=True, text=True, timeout=300)


# -- the load ----------------------------------------------------------------------------------

def _kv(key, value):
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, list):
        for v in value:
            kv.value.array_value.values.add().string_value = v
    else:
        kv.value.string_value = value
    return kv


def build_request(run: str, number: int, tasks: int, rng: random.Random) -> tuple[bytes, list[tuple[str, str]]]:
    """One OTLP request of `tasks` contract-shaped tasks (root, two agents, chats, a tool, a handoff),
    and the (TraceId, SpanId) of each span, as hex."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "fault-load"), _kv("telemetry.sdk.language", "python")])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "opentelemetry.instrumentation.openai_swarm", "0.1.0"
    ids: list[tuple[str, str]] = []
    now = time.time_ns()
    for t in range(tasks):
        trace = rng.randbytes(16)
        user = f"{run}-u{number % 50}"
        common = [_kv("enduser.id", user), _kv("gen_ai.provider.name", "openai")]
        root = rng.randbytes(8)
        spans = [(root, b"", "invoke_workflow swarm", [
            _kv("gen_ai.operation.name", "invoke_workflow"), _kv("swarm.task.input", f"task {number}/{t}"),
            _kv("swarm.task.output", "done"), _kv("swarm.task.agents", ["Triage", "Sales"]),
            _kv("swarm.task.final_agent", "Sales"), _kv("swarm.task.handoffs", 1), _kv("swarm.task.turns", 3),
            _kv("swarm.task.usage.input_tokens", 300), _kv("swarm.task.usage.output_tokens", 60),
            _kv("gen_ai.agent.name", "Triage")])]
        a1, a2 = rng.randbytes(8), rng.randbytes(8)
        spans.append((a1, root, "invoke_agent Triage", [
            _kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", "Triage"),
            _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.usage.input_tokens", 100),
            _kv("gen_ai.usage.output_tokens", 20), _kv("swarm.agent.turns", 1)]))
        spans.append((rng.randbytes(8), a1, "chat gpt-4o-mini", [
            _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.request.model", "gpt-4o-mini"),
            _kv("gen_ai.agent.name", "Triage"), _kv("gen_ai.usage.input_tokens", 100),
            _kv("gen_ai.usage.output_tokens", 20)]))
        spans.append((rng.randbytes(8), a1, "execute_tool transfer_to_Sales", [
            _kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "transfer_to_Sales"),
            _kv("gen_ai.agent.name", "Triage"), _kv("swarm.handoff.to", "Sales")]))
        spans.append((a2, root, "invoke_agent Sales", [
            _kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", "Sales"),
            _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.usage.input_tokens", 200),
            _kv("gen_ai.usage.output_tokens", 40), _kv("swarm.agent.turns", 2),
            _kv("swarm.handoff.from", "Triage")]))
        for _ in range(2):
            spans.append((rng.randbytes(8), a2, "chat gpt-4o-mini", [
                _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.request.model", "gpt-4o-mini"),
                _kv("gen_ai.agent.name", "Sales"), _kv("gen_ai.usage.input_tokens", 100),
                _kv("gen_ai.usage.output_tokens", 20)]))
        spans.append((rng.randbytes(8), a2, "execute_tool lookup_order", [
            _kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "lookup_order"),
            _kv("gen_ai.agent.name", "Sales")]))
        for i, (sid, parent, name, attrs) in enumerate(spans):
            s = ss.spans.add()
            s.trace_id, s.span_id, s.parent_span_id, s.name = trace, sid, parent, name
            s.kind = 3 if name.startswith("chat") else 1
            s.start_time_unix_nano = now + i * 1000
            s.end_time_unix_nano = now + i * 1000 + 5_000_000
            s.attributes.extend(common + attrs)
            ids.append((trace.hex(), sid.hex()))
    return req.SerializeToString(), ids


@dataclass
class Load:
    """Requests at `rate` spans/s to an OTLP/HTTP endpoint, from one thread per sender."""

    url: str
    run: str
    rate: float = 2000.0
    tasks_per_request: int = 8
    senders: int = 2
    retry_window: float = 10.0      # the SDK's OTEL_EXPORTER_OTLP_TIMEOUT
    sent: list = field(default_factory=list)          # (ids, acknowledged) per request
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Load":
        for n in range(self.senders):
            t = threading.Thread(target=self._sender, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _post(self, conn_box: list, body: bytes) -> int | None:
        host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection(host, int(port), timeout=10)
            conn = conn_box[0]
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn_box[0] = None
            return resp.status
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            return None

    def _sender(self, n: int) -> None:
        rng = random.Random(f"{self.run}-{n}")
        per_request = self.tasks_per_request * SPANS_PER_TASK
        interval = per_request * self.senders / self.rate
        conn_box: list = [None]
        number = n
        next_at = time.monotonic()
        while not self._stop.is_set():
            body, ids = build_request(self.run, number, self.tasks_per_request, rng)
            number += self.senders
            acked = False
            deadline = time.monotonic() + self.retry_window
            backoff = 0.5
            while True:
                status = self._post(conn_box, body)
                if status == 200:
                    acked = True
                    break
                if status not in (None, 429, 502, 503, 504) or time.monotonic() + backoff > deadline:
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, 4)
            with self._lock:
                self.sent.append((ids, acked))
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            else:
                next_at = time.monotonic()  # behind (a stall): carry on at the rate, not in a burst

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            sent = sum(len(ids) for ids, _ in self.sent)
            acked = sum(len(ids) for ids, ok in self.sent if ok)
        return sent, acked

    def tally(self, client, otel_db: str = "otel", timeout: float = 120) -> dict:
        """Waits until every acknowledged span is stored (or the timeout), then counts."""
        with self._lock:
            acked_ids = {i for ids, ok in self.sent if ok for i in ids}
            all_ids = {i for ids, _ in self.sent for i in ids}

        def stored_rows():
            rows = client.query(
                "SELECT TraceId, SpanId, count() FROM {db:Identifier}.otel_traces "
                "WHERE SpanAttributes['enduser.id'] LIKE {p:String} GROUP BY TraceId, SpanId",
                parameters={"db": otel_db, "p": self.run + "-%"}).result_rows
            return {(t, s): c for t, s, c in rows}

        stored = poll(stored_rows, lambda got: acked_ids <= set(got), timeout, 0.5)
        time.sleep(1.0)  # a duplicate would come with the last retried insert
        stored = stored_rows()
        return {"sent": len(all_ids), "acknowledged": len(acked_ids),
                "stored": sum(1 for i in stored if i in all_ids),
                "lost": len(acked_ids - set(stored)),
                "duplicates": sum(c - 1 for c in stored.values()),
                "unacknowledged_stored": sum(1 for i in stored if i not in acked_ids)}
