"""Embedded endpoint streaming benchmark: the server's memory while a client streams a large
result, and the time to the first byte of a query that takes 2 s, streamed and buffered.

    .venv/bin/python -m bench.bench_endpoint               # 20M rows
    .venv/bin/python -m bench.bench_endpoint --rows 2000000

The endpoint runs as `swarmlens clickhouse` in its own process on a throwaway data directory, so
its resident memory (VmRSS from /proc) is the endpoint's alone; it is sampled every 50 ms while
the client reads the result as fast as it can and throws it away. Results print as Markdown;
--write-docs replaces the section in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

import requests

from bench.benchlib import progress, start_endpoint, stop_endpoint, write_section

SECTION = "## Embedded endpoint: streaming"
PASSWORD = "bench-endpoint"


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024


def stream_rss(url: str, pid: int, rows: int, wait_end: bool) -> dict:
    auth = ("default", PASSWORD)
    requests.get(url, params={"query": "SELECT 1"}, auth=auth)
    idle = rss(pid)
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    started = time.monotonic()
    got = 0
    params = {"query": f"SELECT number, toString(number) AS s FROM numbers({rows}) FORMAT TSV"}
    if wait_end:
        params["wait_end_of_query"] = "1"
    with requests.get(url, params=params, auth=auth, stream=True) as r:
        r.raise_for_status()
        for chunk in r.iter_content(chunk_size=1 << 20):
            got += chunk.count(b"\n")
            progress(min(got, rows), rows, "streaming" + (" (wait_end_of_query)" if wait_end else ""))
    elapsed = time.monotonic() - started
    stop.set()
    t.join()
    assert got == rows, (got, rows)
    return {"rows": rows, "idle_mb": idle / 2**20, "peak_mb": peak[0] / 2**20,
            "growth_mb": (peak[0] - idle) / 2**20, "seconds": elapsed}


def ttfb(url: str, wait_end: bool, runs: int = 3) -> float:
    auth = ("default", PASSWORD)
    best = []
    for _ in range(runs):
        params = {"query": "SELECT number, sleepEachRow(0.01) FROM numbers(200) SETTINGS max_block_size = 1"}
        if wait_end:
            params["wait_end_of_query"] = "1"
        started = time.monotonic()
        with requests.get(url, params=params, auth=auth, stream=True) as r:
            next(r.iter_content(chunk_size=None))
            first = time.monotonic() - started
            for _ in r.iter_content(chunk_size=None):
                pass
        best.append(first)
    return sorted(best)[len(best) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    data_dir = tempfile.mkdtemp(prefix="swarmlens-bench-endpoint-")
    proc, url = start_endpoint(os.path.join(data_dir, "ch"), PASSWORD, data_dir)
    try:
        streamed = stream_rss(url, proc.pid, args.rows, wait_end=False)
        buffered = stream_rss(url, proc.pid, args.rows, wait_end=True)
        t_stream = ttfb(url, wait_end=False)
        t_buffered = ttfb(url, wait_end=True)
    finally:
        stop_endpoint(proc)
        shutil.rmtree(data_dir, ignore_errors=True)
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Command: `.venv/bin/python -m bench.bench_endpoint --rows {args.rows}`.",
        "",
        "| result of `SELECT number, toString(number) FROM numbers(N)`, TSV | rows | endpoint RSS idle | peak | growth | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("streamed", streamed), ("wait_end_of_query=1 (spooled to a temporary file)", buffered)):
        lines.append(f"| {name} | {r['rows']:,} | {r['idle_mb']:.0f} MB | {r['peak_mb']:.0f} MB | "
                     f"{r['growth_mb']:.0f} MB | {r['seconds']:.1f} |")
    lines += ["", "| a query that runs 2 s (200 rows, 10 ms each) | time to first byte, median of 3 |",
              "|---|---:|",
              f"| streamed | {t_stream * 1000:.0f} ms |",
              f"| wait_end_of_query=1 | {t_buffered * 1000:.0f} ms |"]
    text = SECTION + "\n\n" + "\n".join(lines) + "\n"
    print("\n" + text)
    if args.write_docs:
        write_section(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md"),
                      SECTION, text)


if __name__ == "__main__":
    main()
