"""Embedded ClickHouse benchmark: insert throughput of contract-shaped spans through the HTTP
endpoint with the materialized views attached, and the per-query cost of the HTTP layer,
each run side by side with the same work done on chDB in-process.

    .venv/bin/python bench/bench_clickhouse.py            # full run (200k spans per side)
    .venv/bin/python bench/bench_clickhouse.py --quick    # CI-size run

Batches are what rotel sends: RowBinary in ClickHouse LZ4 blocks with decompress=1, 8192 spans
each (rotel's default batch). Every batch goes once through HTTP into one database pair and once
in-process into an identical second pair, alternating, so machine noise hits both sides alike.
Results print as a Markdown table; --write-docs replaces the section in docs/benchmarks.md.
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
from swarmlens.store.spans import COLUMNS, Stretch, insert_spans, task_spans

from benchlib import progress, write_section

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-size run")
    ap.add_argument("--tasks", type=int, help="tasks per side (default 25000, quick 1500)")
    ap.add_argument("--batch", type=int, default=8192, help="spans per insert (rotel's default batch)")
    ap.add_argument("--queries", type=int, help="repetitions per query (default 300, quick 40)")
    ap.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    args = ap.parse_args()
    n_tasks = args.tasks or (1500 if args.quick else 25000)
    reps = args.queries or (40 if args.quick else 300)

    tmp = tempfile.mkdtemp(prefix="swarmlens-bench-")
    ep = EmbeddedClickHouse(os.path.join(tmp, "ch"), port=0).start()
    try:
        sides = {}
        for side in ("http", "inproc"):
            cfg = config_mod.load({"SWARMLENS_CLICKHOUSE_URL": ep.url, "SWARMLENS_OTEL_DATABASE": f"otel_{side}",
                                   "SWARMLENS_DATABASE": f"swarmlens_{side}"})
            migrate_from_config(cfg)
            sides[side] = cfg
        client = clickhouse_connect.get_client(dsn=ep.url)
        client.command("CREATE DATABASE IF NOT EXISTS bench")
        client.command("CREATE TABLE bench.staging AS otel_http.otel_traces ENGINE = MergeTree ORDER BY TraceId PRIMARY KEY TraceId")
        spans = generate(n_tasks, seed=7)
        for i in range(0, len(spans), 50000):
            insert_spans(client, spans[i:i + 50000], database="bench", table="staging")
        total = len(spans)
        cols = ",".join(COLUMNS)
        bodies = []
        for off in range(0, total, args.batch):
            raw = client.raw_query(f"SELECT {cols} FROM bench.staging ORDER BY TraceId, SpanId "
                                   f"LIMIT {args.batch} OFFSET {off} FORMAT RowBinary")
            bodies.append((raw, codecs.native_block_encode(raw)))
        progress(len(bodies), len(bodies), "encoded rotel-style batches")

        http = requests.Session()
        url_params = {"database": "otel_http", "decompress": "1", "async_insert": "1",
                      "query": f"INSERT INTO otel_traces ({cols}) FORMAT RowBinary"}
        t_http = t_inproc = 0.0
        for k, (raw, compressed) in enumerate(bodies):
            t = time.perf_counter()
            r = http.post(ep.url, params=url_params, data=compressed)
            t_http += time.perf_counter() - t
            assert r.status_code == 200, r.text
            conn = ep.engine.acquire()
            try:
                t = time.perf_counter()
                ins = conn.conn.send_insert(f"INSERT INTO otel_inproc.otel_traces ({cols})", "RowBinary")
                ins.append(raw)
                ins.finish()
                t_inproc += time.perf_counter() - t
            finally:
                ep.engine.release(conn)
            progress(k + 1, len(bodies), "inserting (both sides)")
        for side in ("http", "inproc"):
            got = client.query(f"SELECT count() FROM otel_{side}.otel_traces").result_rows[0][0]
            tasks = client.query(f"SELECT count() FROM swarmlens_{side}.tasks FINAL").result_rows[0][0]
            assert got == total and tasks == n_tasks, (side, got, total, tasks, n_tasks)

        queries = {
            "SELECT 1": "SELECT 1",
            "one user's 50 newest tasks": "SELECT task_id, start_time, input_tokens FROM swarmlens_http.tasks "
                                          "WHERE user_id = 'user-1' ORDER BY start_time DESC LIMIT 50",
            "tokens per agent (agent_runs)": "SELECT agent, sum(input_tokens + output_tokens) FROM "
                                             "swarmlens_http.agent_runs GROUP BY agent",
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

    sps_http, sps_in = total / t_http, total / t_inproc
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, " \
              f"chDB engine {ep.engine.version}"
    lines = [
        SECTION, "",
        f"Machine: {machine}. Command: `.venv/bin/python bench/bench_clickhouse.py{' --quick' if args.quick else ''}`"
        f" ({n_tasks} tasks, {total} spans per side, batches of {args.batch} spans, views attached).", "",
        "| insert path | spans/s | ratio to in-process |", "|---|---:|---:|",
        f"| HTTP endpoint, rotel-style LZ4 blocks | {sps_http:,.0f} | {sps_http / sps_in:.2f} |",
        f"| chDB in-process, same RowBinary | {sps_in:,.0f} | 1.00 |", "",
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
