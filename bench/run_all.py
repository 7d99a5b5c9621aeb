"""Every benchmark of docs/benchmarks.md, one after the other, each replacing its own section.

    .venv/bin/python -m bench.run_all --preset full     # the published figures (about 45 min at 1M tasks on 2 loaded cores)
    .venv/bin/python -m bench.run_all --preset tiny     # CI size: every bench with --quick

The benches run one at a time, never concurrently, so none of them measures another's load:

- bench_clickhouse.py      "## Embedded ClickHouse" (insert path and per-query HTTP cost)
- bench_instrumentation.py "## Instrumentation overhead" (when present)
- bench_pipeline.py        "## Pipeline" (OTLP -> rotel -> embedded ClickHouse; when present)
- bench_reports.py         "## Reports at scale", "## Storage", "## How to reproduce"

A bench that fails is reported at the end and the others still run; the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench import generate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OTHERS = ("bench_clickhouse.py", "bench_instrumentation.py", "bench_pipeline.py")


def _module(script: str) -> list[str]:
    """The command that runs bench/NAME.py: its module, from the repository root (the run's cwd)."""
    return ["-m", f"bench.{os.path.splitext(script)[0]}"]


def _accepts(script: str, flag: str) -> bool:
    out = subprocess.run([sys.executable, *_module(script), "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120, cwd=ROOT).stdout
    return flag in out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(generate.PRESETS), default="full")
    ap.add_argument("--no-write-docs", action="store_true", help="print the tables only, leave docs/benchmarks.md")
    ap.add_argument("--only", nargs="*", help="run only these scripts (e.g. bench_reports.py)")
    args = ap.parse_args()
    quick = args.preset == "tiny"
    write = [] if args.no_write_docs else ["--write-docs"]
    runs = []
    for name in OTHERS:
        if not os.path.exists(os.path.join(HERE, name)):
            print(f"-- {name}: not present, skipped", flush=True)
            continue
        extra = ["--quick"] if quick and _accepts(name, "--quick") else []
        # bench_instrumentation.py writes its section unless told --no-write; the others need --write-docs.
        if args.no_write_docs:
            flags = ["--no-write"] if _accepts(name, "--no-write") else []
        else:
            flags = [w for w in write if _accepts(name, w)]
        runs.append((name, [sys.executable, *_module(name), *extra, *flags]))
    runs.append(("bench_reports.py", [sys.executable, *_module("bench_reports.py"), "--preset", args.preset,
                                      *write]))
    if args.only:
        runs = [r for r in runs if r[0] in args.only]
    failed = []
    started = time.monotonic()
    for name, cmd in runs:
        print(f"== {name}: {' '.join(os.path.relpath(c) if c.startswith('/') else c for c in cmd[1:])}", flush=True)
        t = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.monotonic() - t:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    print(f"{len(runs) - len(failed)} of {len(runs)} benchmarks ran in {time.monotonic() - started:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else "")
          + ("" if args.no_write_docs else "; docs/benchmarks.md updated"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
