"""Endpoint fuzzing, the long run: malformed HTTP and encodings thrown at the embedded ClickHouse
endpoint (`swarmlens clickhouse` in a subprocess on 127.0.0.1, a fresh data directory, a 1 MiB body
limit). The cases, the oracle and the endpoint harness are tests/support/swarmlens_testing/endpoint_fuzz.py; the bounded
run is tests/embedded/test_endpoint_fuzz.py.

Prints a live count, then the cases per category and per status, the endpoint's peak RSS, and every
failure with the case id that rebuilds it (`--only SEED:INDEX`). Exits 1 on any failure.

    .venv/bin/python -m bench.bench_endpoint_fuzz                  # 10,000 cases, seed 1
    .venv/bin/python -m bench.bench_endpoint_fuzz --cases 500 --seed 7
    .venv/bin/python -m bench.bench_endpoint_fuzz --only 1:4711    # one case again, verbosely
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.benchlib import cpu_model, progress
from swarmlens_testing.endpoint_fuzz import (ALLOWED_5XX, FuzzEndpoint, Fuzzer, Generator, describe,
                                              guard_checksum, prepare)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the cases (default 1)")
    ap.add_argument("--start", type=int, default=0, help="index of the first case (default 0)")
    ap.add_argument("--batch", type=int, default=100, help="cases between health probes (default 100)")
    ap.add_argument("--only", action="append", default=[], metavar="SEED:INDEX", help="run these cases alone")
    ap.add_argument("--case-timeout", type=float, default=60.0, help="seconds a case may take (default 60)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory and the endpoint's log")
    args = ap.parse_args()
    if args.cases < 1 or args.batch < 1:
        ap.error("--cases and --batch are at least 1")
    if args.only:
        ids = [tuple(int(x) for x in o.split(":")) for o in args.only]
    else:
        ids = [(args.seed, i) for i in range(args.start, args.start + args.cases)]

    work = Path(tempfile.mkdtemp(prefix="swarmlens-endpoint-fuzz-"))
    ep = FuzzEndpoint(work).start()
    started = time.monotonic()
    failures: list[str] = []
    by_category: dict[str, Counter] = defaultdict(Counter)
    statuses: Counter = Counter()
    allowed_5xx: Counter = Counter()  # (status, code) of every 5xx answer; the oracle fails those not allowed
    rss_trend: list[str] = []
    slowest = (0.0, "")
    top_rise = (0, "")  # the largest rise of RSS during one case, over the RSS before it
    peak_rss, first_rss = 0, ep.rss()[0]
    try:
        corpus, checksum = prepare(ep)
        gen = Generator(corpus)
        fuzzer = Fuzzer(ep, case_timeout=args.case_timeout)
        step = max(1, len(ids) // 500)
        for n, (seed, index) in enumerate(ids, 1):
            case = gen.generate(seed, index)
            out = fuzzer.run_case(case)
            by_category[case.category][out.status] += 1
            statuses[out.status] += 1
            for r in out.responses:
                if r.status >= 500:
                    code = int(r.headers.get("x-clickhouse-exception-code") or -1)
                    allowed_5xx[(r.status, code)] += 1
            peak_rss = max(peak_rss, out.rss_peak)
            if out.rss_peak - out.rss_before > top_rise[0]:
                top_rise = (out.rss_peak - out.rss_before, f"{case.id} {case.category}/{case.kind}")
            if out.seconds > slowest[0]:
                slowest = (out.seconds, f"{case.id} {case.category}/{case.kind}")
            if out.failures:
                failures.append(describe(out))
                sys.stderr.write("\n" + failures[-1] + "\n")
            if args.only:
                print(f"{case.id} {case.category}/{case.kind}: {out.status} ({out.end}) in {out.seconds:.2f} s, "
                      f"{len(out.responses)} response(s)")
                for r in out.responses:
                    print(f"  {r.status} {r.headers.get('x-clickhouse-exception-code', '')} {r.body[:300]!r}")
            if not ep.alive():
                failures.append(f"the endpoint died at case {case.id}; log: {ep.log_path}")
                break
            if n % 1000 == 0:
                rss_trend.append(f"{n}: {ep.rss()[0] >> 20}")
            if n % args.batch == 0 or n == len(ids):
                problem = fuzzer.health()
                if problem is None and guard_checksum(ep) != checksum:
                    problem = "the seeded table changed"
                if problem:
                    failures.append(f"after case {case.id}: {problem}")
                    sys.stderr.write("\n" + failures[-1] + "\n")
            if not args.only and (n % step == 0 or n == len(ids)):
                progress(n, len(ids), f"fuzz ({len(failures)} failures)")
        end_rss = ep.rss()[0]
    finally:
        ep.stop()
    elapsed = time.monotonic() - started

    print()
    codes = sorted(statuses, key=lambda s: (not s[0].isdigit(), s))
    print(f"{'category':<14}" + "".join(f"{c:>15}" for c in codes) + f"{'cases':>8}")
    for cat in sorted(by_category):
        row = by_category[cat]
        print(f"{cat:<14}" + "".join(f"{row.get(c, 0):>15}" for c in codes) + f"{sum(row.values()):>8}")
    print(f"{'all':<14}" + "".join(f"{statuses.get(c, 0):>15}" for c in codes) + f"{sum(statuses.values()):>8}")
    unexpected = sum(v for k, v in allowed_5xx.items() if k not in ALLOWED_5XX)
    allowed = ", ".join(f"{v} x {k[0]} (Code {k[1]}: {ALLOWED_5XX[k]})" for k, v in allowed_5xx.items() if k in ALLOWED_5XX)
    print(f"\nendpoint RSS: {first_rss >> 20} MiB at the start, {end_rss >> 20} MiB at the end, peak {peak_rss >> 20} MiB; "
          f"largest rise during one case {top_rise[0] >> 20} MiB ({top_rise[1]}); slowest case {slowest[0]:.1f} s "
          f"({slowest[1]})")
    if rss_trend:
        print("RSS (MiB) after N cases: " + ", ".join(rss_trend))
    print(f"5xx answers: {unexpected} not allowed" + (f"; allowed: {allowed}" if allowed else ""))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")
    print(f"endpoint fuzzing: {len(ids)} cases in {elapsed:.0f} s, {len(by_category)} categories, {unexpected} 5xx not allowed, "
          f"{len(failures)} failures" + ("" if not failures else " (listed above)"))
    if args.keep:
        print(f"kept: {work}")
    else:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
