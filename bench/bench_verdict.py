"""What the statement check costs a request: the same statement sent again (its verdict cached by
text), new texts of one shape (values inlined: cached by shape), parameterized statements with new
parameter values (one text), and never-seen shapes (the engine parses each: two engine round trips).

    .venv/bin/python -m bench.bench_verdict [--requests 2000]

Each side runs interleaved in rounds over one keep-alive HTTP connection to an in-process endpoint,
and every side's answers are checked against the values sent. Prints the median per request and
the ratios to the cached case.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import requests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per side")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from swarmlens.embedded.server import EmbeddedClickHouse

    with tempfile.TemporaryDirectory() as tmp:
        ep = EmbeddedClickHouse(os.path.join(tmp, "ch"), port=0).start()
        s = requests.Session()
        fresh = iter(range(10**9))

        def cached(i):
            return "SELECT 7 + 1", {}, "8"

        def by_shape(i):
            return f"SELECT {i} + 1 WHERE 'x{i}' != ''", {}, str(i + 1)

        def parameterized(i):
            return "SELECT {v:UInt64} + 1", {"param_v": str(i)}, str(i + 1)

        def new_shape(i):
            n = next(fresh)
            # an identifier that differs makes a shape of its own
            return f"SELECT {i} + 1 AS c{n}", {}, str(i + 1)

        sides = {"cached (same text)": cached, "same shape, new literals": by_shape,
                 "parameterized, new values": parameterized, "new shape every time": new_shape}
        per = {name: [] for name in sides}
        for fn in sides.values():  # warm: the first of each shape pays the parse
            sql, params, _ = fn(1)
            s.post(ep.url, params=params, data=sql.encode()).raise_for_status()
        n = args.requests // args.rounds
        for r in range(args.rounds):
            for name, fn in sides.items():
                t0 = time.perf_counter()
                for i in range(n):
                    sql, params, want = fn(r * n + i + 2)
                    got = s.post(ep.url, params=params, data=sql.encode())
                    if got.status_code != 200 or got.text.strip() != want:
                        raise SystemExit(f"{name}: wrong answer {got.status_code} {got.text[:200]!r}, wanted {want}")
                per[name].append((time.perf_counter() - t0) / n * 1e3)
        ep.stop()
    base = statistics.median(per["cached (same text)"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}; "
          f"{args.requests} requests per side in {args.rounds} rounds")
    print(f"{'side':<28} {'ms/request':>10} {'ratio':>7}")
    for name, xs in per.items():
        m = statistics.median(xs)
        print(f"{name:<28} {m:>10.3f} {m / base:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
