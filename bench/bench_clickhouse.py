"""Embedded ClickHouse benchmark: insert throughput of contract-shaped spans through the HTTP
endpoint with the materialized views attached, and the per-query cost of the HTTP layer, each run
side by side with the same work done on chDB in-process.

    .venv/bin/python -m bench.bench_clickhouse            # full run: 25k tasks, batches of 8192 and 65536
    .venv/bin/python -m bench.bench_clickhouse --quick    # CI-size run

Batches are what rotel sends: RowBinary in ClickHouse LZ4 blocks with decompress=1. Every batch goes
through HTTP into one fresh schema, in-process into an identical second one, and through HTTP into a
table without views, in turn, so machine noise hits every side alike. Results print as a Markdown
table; --write-docs replaces the section in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client as http_client
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import clickhouse_connect
import requests

from swarmlens import config as config_mod
from swarmlens.embedded import codecs
from swarmlens.embedded.server import EmbeddedClickHouse
from swarmlens.store.migrate import migrate_from_config
from swarmlens_testing.spans import COLUMNS, Stretch, insert_spans, task_spans  # test helper

from bench.benchlib import progress, write_section

AGENTS = ["Triage", "Billing", "Tech Support", "Account", "Sales"]
TOOLS = ["lookup_invoice", "search_docs", "reset_password", "create_ticket"]
SECTION = "## Embedded ClickHouse"


def generate(n_tasks: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    spans: list[dict] = []
    for i in range(n_tasks):
        chain = [AGENTS[0]] + rng.sample(AGENTS[1:], rng.randint(0, 2))
        stretches = [Stretch(a, model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
                             chats=[(rng.randint(200, 2000), rng.randint(20, 400)) for _ in range(rng.randint(1, 2))],
                             tools=rng.sample(TOOLS, rng.randint(0, 1))) for a in chain]
        spans += task_spans(user_id=f"user-{int(rng.paretovariate(1.2)) % 5000}", stretches=stretches,
                            start=start + timedelta(seconds=i * 7), rng=rng,
                            input=f"question {i} about invoices and passwords", output=f"answer {i}")
        if i % 500 == 0 or i == n_tasks - 1:
            progress(i + 1, n_tasks, "generating tasks")
    return spans


def insert_run(ep, client, spans, n_tasks: int, batch: int, cols: str) -> tuple[float, float, float]:
    """Seconds to insert every span in batches of `batch`: over HTTP, in-process, and over HTTP
    into a table without views; each into its own fresh database, batches interleaved."""
    for side in ("http", "inproc"):
        migrate_from_config(config_mod.load({"SWARMLENS_CLICKHOUSE_URL": ep.url,
                                             "SWARMLENS_OTEL_DATABASE": f"otel_{side}_{batch}",
                                             "SWARMLENS_DATABASE": f"swarmlens_{side}_{batch}"}))
    client.command(f"CREATE DATABASE IF NOT EXISTS bench_{batch}")
    client.command(f"CREATE TABLE bench_{batch}.staging AS otel_http_{batch}.otel_traces "
                   "ENGINE = MergeTree ORDER BY TraceId PRIMARY KEY TraceId")
    client.command(f"CREATE TABLE bench_{batch}.bare AS otel_http_{batch}.otel_traces")
    for i in range(0, len(spans), 50000):
        insert_spans(client, spans[i:i + 50000], database=f"bench_{batch}", table="staging")
    total = len(spans)
    bodies = []
    for off in range(0, total, batch):
        raw = client.raw_query(f"SELECT {cols} FROM bench_{batch}.staging ORDER BY TraceId, SpanId "
                               f"LIMIT {batch} OFFSET {off} FORMAT RowBinary")
        bodies.append((raw, codecs.native_block_encode(raw)))
    http = requests.Session()
    query = f"INSERT INTO otel_traces ({cols}) FORMAT RowBinary"
    t_http = t_inproc = t_bare = 0.0
    for k, (raw, compressed) in enumerate(bodies):
        t = time.perf_counter()
        r = http.post(ep.url, params={"database": f"otel_http_{batch}", "decompress": "1", "async_insert": "1",
                                      "query": query}, data=compressed)
        t_http += time.perf_counter() - t
        assert r.status_code == 200, r.text
        conn = ep.engine.acquire()
        try:
            t = time.perf_counter()
            ins = conn.conn.send_insert(f"INSERT INTO otel_inproc_{batch}.otel_traces ({cols})", "RowBinary")
            ins.append(raw)
            ins.finish()
            t_inproc += time.perf_counter() - t
        finally:
            ep.engine.release(conn)
        t = time.perf_counter()
        r = http.post(ep.url, params={"database": f"bench_{batch}", "decompress": "1",
                                      "query": f"INSERT INTO bare ({cols}) FORMAT RowBinary"}, data=compressed)
        t_bare += time.perf_counter() - t
        assert r.status_code == 200, r.text
        progress(k + 1, len(bodies), f"inserting, {batch} a batch")
    for side in ("http", "inproc"):
        got = client.query(f"SELECT count() FROM otel_{side}_{batch}.otel_traces").result_rows[0][0]
        tasks = client.query(f"SELECT count() FROM swarmlens_{side}_{batch}.tasks FINAL").result_rows[0][0]
        assert got == total and tasks == n_tasks, (side, got, total, tasks, n_tasks)
    return t_http, t_inproc, t_bare


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-size run")
    ap.add_argument("--tasks", type=int, help="tasks per side (default 25000, quick 1500)")
    ap.add_argument("--batches", help="spans per insert, comma-separated (default 8192,65536; quick 8192): "
                    "8192 is rotel's default batch")
    ap.add_argument("--queries", type=int, help="repetitions per query (default 300, quick 40)")
    ap.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    args = ap.parse_args()
    n_tasks = args.tasks or (1500 if args.quick else 25000)
    reps = args.queries or (40 if args.quick else 300)
    batches = [int(b) for b in (args.batches or ("8192" if args.quick else "8192,65536")).split(",")]

    tmp = tempfile.mkdtemp(prefix="swarmlens-bench-")
    ep = EmbeddedClickHouse(os.path.join(tmp, "ch"), port=0).start()
    try:
        client = clickhouse_connect.get_client(dsn=ep.url)
        cols = ",".join(COLUMNS)
        spans = generate(n_tasks, seed=7)
        total = len(spans)
        inserts = []
        for batch in batches:
            inserts.append((batch, *insert_run(ep, client, spans, n_tasks, batch, cols)))
        # the per-query comparison reads the tables of the first run
        db = f"swarmlens_http_{batches[0]}"
        queries = {
            "SELECT 1": "SELECT 1",
            "one user's 50 newest tasks": f"SELECT task_id, start_time, input_tokens FROM {db}.tasks "
                                          "WHERE user_id = 'user-1' ORDER BY start_time DESC LIMIT 50",
            "tokens per agent (agent_runs)": "SELECT agent, sum(input_tokens + output_tokens) FROM "
                                             f"{db}.agent_runs GROUP BY agent",
        }
        rows_q = []
        raw_http = http_client.HTTPConnection("127.0.0.1", ep.port)
        cc = clickhouse_connect.get_client(dsn=ep.url, autogenerate_session_id=False)
        conn = ep.engine.acquire()
        try:
            for name, sql in queries.items():
                times = {"inproc": [], "http": [], "cc": []}
                for _ in range(reps):  # the three clients alternate, so noise hits them alike
                    t = time.perf_counter()
                    conn.run(sql, "TabSeparated").bytes()
                    times["inproc"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    raw_http.request("POST", "/", body=sql.encode())
                    resp = raw_http.getresponse()
                    resp.read()
                    times["http"].append(time.perf_counter() - t)
                    assert resp.status == 200
                    t = time.perf_counter()
                    cc.query(sql)
                    times["cc"].append(time.perf_counter() - t)
                rows_q.append((name, *(statistics.median(times[k]) * 1e3 for k in ("inproc", "http", "cc"))))
        finally:
            ep.engine.release(conn)
    finally:
        ep.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, " \
              f"chDB engine {ep.engine.version}"
    lines = [
        SECTION, "",
        f"Machine: {machine}. Command: `.venv/bin/python -m bench.bench_clickhouse{' --quick' if args.quick else ''}`"
        f" ({n_tasks} tasks, {total} contract-shaped spans per run).", "",
        "Each batch is inserted three ways in turn: through the HTTP endpoint as rotel sends it (RowBinary in "
        "ClickHouse LZ4 blocks, decompress=1) into a fresh schema with every view attached; the same RowBinary "
        "into chDB in-process (a second fresh schema, views attached); and through HTTP into a bare copy of "
        "otel_traces with no views, which shows what the views cost.", "",
        "| spans per insert | HTTP, views on: spans/s | in-process, views on: spans/s | HTTP / in-process "
        "| HTTP, no views: spans/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for batch, t_http, t_inproc, t_bare in inserts:
        lines.append(f"| {batch:,} | {total / t_http:,.0f} | {total / t_inproc:,.0f} | {t_inproc / t_http:.2f} "
                     f"| {total / t_bare:,.0f} |")
    lines += [
        "",
        f"Per-query time, median of {reps} runs each, alternating:", "",
        "| query | in-process ms | raw HTTP ms | ratio | clickhouse-connect ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, a, b, c in rows_q:
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} | {c:.2f} | {c / a:.2f} |")
    lines += ["", "Raw HTTP is one keep-alive connection (http.client): the endpoint's own cost. "
              "clickhouse-connect adds its client-side work (what the reporter pays)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_docs:
        write_section("docs/benchmarks.md", SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
