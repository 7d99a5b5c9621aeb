"""Replay benchmark: how fast the OTLP receiver drains a backlog of its write-ahead log.

    .venv/bin/python -m bench.bench_replay                          # 100k spans in 200 segments
    .venv/bin/python -m bench.bench_replay --spans 20000 --segments 40   # a quicker run

A backlog is what `swarmlens up` finds after a crash of the whole tree or a ClickHouse outage: many
small sealed segments. The benchmark writes one (task-shaped requests of 8-span tasks, as
bench_faults sends them, ``--segments`` segments holding ``--spans`` spans in all) with the log's
own ``append`` and ``seal``, starts the embedded ClickHouse endpoint on a fresh data directory with
the schema migrated (every materialized view on), then starts the receiver on that log and times it
from its start until every span is in ``otel_traces`` and the log is empty. The rate is spans over
that time. Each spans is checked to be there once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.benchlib import cpu_model, start_endpoint, stop_endpoint
from swarmlens_testing.faults import build_request


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spans", type=int, default=100_000)
    p.add_argument("--segments", type=int, default=200)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()

    from swarmlens import config as config_mod
    from swarmlens.ingest import server
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import migrate_from_config

    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    proc, url = start_endpoint(str(work / "clickhouse"), "bench", data_dir=str(work))
    try:
        cfg = config_mod.load({"SWARMLENS_CLICKHOUSE_URL": url, "SWARMLENS_CLICKHOUSE_PASSWORD": "bench",
                               "SWARMLENS_DATA_DIR": str(work)})
        migrate_from_config(cfg)
        tasks_per_segment = max(1, round(args.spans / 8 / args.segments))
        rng = random.Random(1)
        writer = server.Ingest(cfg, str(work / "ingest"))  # not started: only its log is used
        spans = 0
        t0 = time.monotonic()
        for seg in range(args.segments):
            left = tasks_per_segment
            while left:
                n = min(left, 16)  # requests of up to 16 tasks (128 spans), several per segment
                body, ids = build_request("replay", seg, n, rng)
                writer.wal.append(hashlib.blake2b(body, digest_size=server.DIGEST_BYTES).digest() + body)
                spans += len(ids)
                left -= n
            writer.wal.seal()
        backlog = writer.wal.sealed()
        size = sum(s.size for s in backlog)
        writer.wal.close()
        print(f"backlog: {spans:,} spans in {len(backlog)} segments, {size / 1e6:.1f} MB "
              f"(written in {time.monotonic() - t0:.1f} s)", flush=True)

        client = connect(cfg)
        started = time.monotonic()
        ing = server.Ingest(cfg, str(work / "ingest"), batch_seconds=0.2).start("127.0.0.1", 0, 0)
        try:
            while ing.status()["backlog_segments"]:
                if time.monotonic() - started > 600:
                    raise SystemExit("the backlog did not drain within 600 s")
                time.sleep(0.05)
            took = time.monotonic() - started
            counts = ing.status()["counts"]
        finally:
            ing.stop()
        stored, distinct = client.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel.otel_traces").result_rows[0]
        tasks = client.query("SELECT count() FROM swarmlens.tasks FINAL").result_rows[0][0]
        client.close()
        print(f"drained {spans:,} spans from {len(backlog)} segments in {took:.2f} s: {spans / took:,.0f} spans/s "
              f"({counts.get('inserts', 0)} inserts); stored {stored:,} ({distinct:,} distinct), tasks {tasks:,}")
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, "
              f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}")
        if stored != spans or distinct != spans:
            print("MISMATCH: not every span stored exactly once")
            return 1
        return 0
    finally:
        stop_endpoint(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
