"""Server time of the reporter's filtered pages and of search by the start of a word, on data made by
generate.py, against the same pages unfiltered (and whole-word search) in the same loop.

    .venv/bin/python -m bench.generate --preset full --data-dir /tmp/swarmlens-bench --migrate
    .venv/bin/python -m bench.bench_filters --data-dir /tmp/swarmlens-bench --reps 20

The pages go through the Flask test client with an ops API token, against the embedded endpoint in
a process of its own (as `swarmlens up` runs it), with reuse of results off;
the cases take turns within each repetition (the order rotates), so the noise of a shared machine
hits them alike. Prints p50 and p95 per page in milliseconds and the page-time target it is held to.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import time
from datetime import timedelta

from bench.benchlib import progress, start_endpoint, stop_endpoint

TARGET_PAGE_P95_MS = 150


def cases(today, top_user: str) -> list[tuple[str, str]]:
    d30, d90 = today - timedelta(days=29), today - timedelta(days=89)
    return [
        ("dashboard, 30 days", "/?period=30d"),
        ("dashboard, a 30-day range", f"/?from={d30}&to={today}"),
        ("dashboard, one agent", "/?period=30d&agent=Billing"),
        ("dashboard, one model", "/?period=30d&model=o3-mini"),
        ("dashboard, a user and an agent", f"/?period=30d&user={top_user}&agent=Triage"),
        ("agents, 30 days", "/agents?period=30d"),
        ("agents, one user", f"/agents?period=30d&user={top_user}"),
        ("agents, one model", "/agents?period=30d&model=o3-mini"),
        ("report, a 30-day range", f"/reports/custom?from={d30}&to={today}"),
        ("search 'refund'", f"/search?q=refund&from={d90}"),
        ("search 'refun' (start of a word)", f"/search?q=refun&from={d90}"),
        ("search 'firmw' (start of a rare word)", f"/search?q=firmw&from={d90}"),
        ("search 'zzzzqqq' (no match)", f"/search?q=zzzzqqq&from={d90}"),
        ("search 'refun', one user", f"/search?q=refun&user={top_user}&from={d90}"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="the embedded ClickHouse data directory generate.py filled")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per page (after one warm-up)")
    args = ap.parse_args(argv)

    from swarmlens import auth
    from swarmlens.app import create_app
    from swarmlens.reports.common import today
    from swarmlens.store.client import connect

    # The endpoint in a process of its own, as `swarmlens up` runs it (in this process its threads
    # would take turns on one GIL with the app's).
    password = secrets.token_urlsafe(16)
    ep, url = start_endpoint(args.data_dir, password)
    try:
        # Every repetition computes its page: no reuse of results (each run reads the same data).
        app = create_app({"SWARMLENS_CLICKHOUSE_URL": url, "SWARMLENS_CLICKHOUSE_PASSWORD": password,
                          "SWARMLENS_REPORTER_CACHE_BYTES": 0, "TESTING": True})
        cfg = app.config["SWARMLENS"]
        client = connect(cfg)
        try:
            auth.set_ops_password(client, cfg, "bench", "bench-password", create=True)
        except auth.AuthError:  # made by an earlier run on the same data
            pass
        token, _ = auth.create_token(client, cfg, scope="ops", owner="bench", name="bench filters")
        top_user = client.query(f"SELECT user_id FROM {cfg['SWARMLENS_DATABASE']}.tasks_daily "
                                "GROUP BY user_id ORDER BY sum(tasks) DESC LIMIT 1").result_rows[0][0]
        client.close()
        pages = cases(today(), top_user)
        tc = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        times: dict[str, list[float]] = {label: [] for label, _ in pages}
        for label, path in pages:  # warm-up, and every page must answer 200
            r = tc.get(path, headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"{path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        for rep in range(args.reps):
            order = pages[rep % len(pages):] + pages[:rep % len(pages)]
            for label, path in order:
                t = time.perf_counter()
                tc.get(path, headers=headers)
                times[label].append((time.perf_counter() - t) * 1000)
            progress(rep + 1, args.reps, "timing pages")
        print()
        print(f"{platform.node()} · {os.cpu_count()} cores · {platform.python_version()} · {args.reps} runs per page")
        print(f"| page | path | p50 ms | p95 ms | p95 ≤ {TARGET_PAGE_P95_MS} ms |")
        print("|---|---|---:|---:|---|")
        for label, path in pages:
            ts = sorted(times[label])
            p95 = ts[max(0, round(0.95 * len(ts)) - 1)]
            print(f"| {label} | `{path}` | {statistics.median(ts):.1f} | {p95:.1f} | "
                  f"{'met' if p95 <= TARGET_PAGE_P95_MS else 'NOT met'} |")
    finally:
        stop_endpoint(ep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
