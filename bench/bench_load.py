"""Load on the reporter: N signed-in clients request pages as fast as they get answers, for a fixed
time, against `swarmlens up --demo` (started here on free loopback ports, in a fresh data directory).

    .venv/bin/python -m bench.bench_load                      # 50 clients, 60 s, the default layout
    .venv/bin/python -m bench.bench_load --repeat 3           # three runs, each on a stack of its own
    .venv/bin/python -m bench.bench_load --compare            # the earlier layouts (sync workers, 2 x 8
                                                              # threads), then the default
    .venv/bin/python -m bench.bench_load --no-reuse           # SWARMLENS_REPORTER_CACHE_BYTES=0
    .venv/bin/python -m bench.bench_load --quick              # 10 clients, 10 s
    .venv/bin/python -m bench.bench_load --url http://127.0.0.1:8000 --login admin --password ...

Each client signs in as the ops admin (its own session), then cycles through a mix of pages: the
dashboard, the users list, search, the agents page, the monthly report, feedback, a user's page, a
task's page and the API's task history; the user, the task and the search word differ from client
to client (spread over the demo's users and tasks). Clients keep their connections alive, as browsers
do (--connection-close: one per request). A response other than 200 counts as an error. It prints
requests, errors, requests/s and latency percentiles, overall and per page, with a live count while it runs; --write-docs
puts the table in docs/benchmarks.md under its own heading (not the "Reporter under load" analysis). Loopback only: the URL must be local.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.benchlib import write_section
from swarmlens_testing.ports import free_port  # one port never handed out twice

ROOT = Path(__file__).resolve().parents[1]
# Its own section: "## Reporter under load" holds every run and what they show, written by hand,
# which --write-docs must not replace.
SECTION = "## Reporter under load: latest bench_load.py --write-docs run"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def start_stack(data_dir: str, threads: int, workers: int, reuse: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "swarmlens.cli", "up", "--demo", "--data-dir", data_dir,
            "--port", str(port), "--clickhouse-port", str(free_port()), "--otlp-grpc-port", str(free_port()),
            "--otlp-http-port", str(free_port()), "--workers", str(workers)]
    env = {**os.environ, "SWARMLENS_REPORTER_THREADS": str(threads), "SWARMLENS_DATA_DIR": data_dir}
    if not reuse:
        env["SWARMLENS_REPORTER_CACHE_BYTES"] = "0"
    log = open(os.path.join(data_dir, "bench-up.log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"`swarmlens up` exited with {proc.returncode} while waiting for {what}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        sys.stderr.write(f"\rwaiting for {what} ({deadline - time.monotonic():.0f} s left) ")
        sys.stderr.flush()
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def sign_in(base: str, login: str, password: str) -> requests.Session:
    s = requests.Session()
    page = s.get(base + "/login", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(base + "/login", data={"csrf_token": csrf, "mode": "ops", "login": login, "password": password},
               allow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise SystemExit(f"sign-in failed: {r.status_code} {r.text[:200]}")
    return s


SEARCH_WORDS = ["order", "refund", "invoice", "password", "laptop", "plan", "shipping", "upgrade"]


def page_mixes(base: str, s: requests.Session, clients: int) -> list[list[str]]:
    """One mix of pages per client: the same ops pages for everyone (the dashboard, the users
    list, the agents page, the monthly report, feedback), and for each client its own user's page,
    task page and API history, and its own search word, spread over the demo's users and tasks,
    so that what one client reads is not simply what the others just read."""
    found = s.get(base + "/search?format=json&limit=200", timeout=60).json()
    tasks = found.get("tasks") or []
    if not tasks:
        raise SystemExit("the demo has no tasks yet")
    users = sorted({t["user_id"] for t in tasks})
    mixes = []
    for i in range(clients):
        user, task = users[i % len(users)], tasks[i % len(tasks)]["task_id"]
        word = SEARCH_WORDS[i % len(SEARCH_WORDS)]
        mixes.append(["/", "/users", f"/search?q={word}", "/agents", "/reports/monthly", "/feedback",
                      f"/users/{user}", f"/tasks/{task}", f"/api/v1/users/{user}/tasks"])
    return mixes


def run_load(base: str, login: str, password: str, clients: int, seconds: float,
             connection_close: bool = False) -> dict:
    first = sign_in(base, login, password)
    mixes = page_mixes(base, first, clients)
    token = None
    sessions = [sign_in(base, login, password) for _ in range(clients)]
    # The API takes bearer tokens only: one ops token for every client.
    from_admin = first.get(base + "/admin/tokens", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', from_admin).group(1)
    r = first.post(base + "/admin/tokens", data={"csrf_token": csrf, "scope": "ops", "owner": login,
                                                  "name": "bench-load"}, timeout=30)
    m = re.search(r"(slk_[A-Za-z0-9_-]{20,})", r.text)
    token = m.group(1) if m else None
    if token is None:
        mixes = [[p for p in mix if not p.startswith("/api/")] for mix in mixes]

    latencies: list[float] = []
    by_page: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(i: int, s: requests.Session) -> None:
        n = i
        while time.monotonic() < stop_at:
            mix = mixes[i]
            path = mix[n % len(mix)]
            n += 1
            # Keep-alive connections, as browsers use them (a client is never idle long enough
            # for the server to close one); --connection-close opens one per request instead.
            headers = {"Connection": "close"} if connection_close else {}
            if path.startswith("/api/"):
                headers["Authorization"] = f"Bearer {token}"
            t0 = time.perf_counter()
            try:
                resp = s.get(base + path, headers=headers, timeout=60)
                resp.content
                ok, what = resp.status_code == 200, f"{resp.status_code} {path}"
            except requests.RequestException as exc:
                ok, what = False, f"{exc.__class__.__name__} {path}: {str(exc)[-120:]}"
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                by_page.setdefault(page_kind(path), []).append(elapsed)
                if not ok:
                    errors.append(what)

    threads = [threading.Thread(target=client, args=(i, s), daemon=True) for i, s in enumerate(sessions)]
    started = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        left = max(0.0, stop_at - time.monotonic())
        with lock:
            sys.stderr.write(f"\r{clients} clients: {len(latencies)} requests, {len(errors)} errors, {left:.0f} s left ")
        sys.stderr.flush()
    wall = time.monotonic() - started
    sys.stderr.write("\n")
    lat = sorted(latencies)

    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:10], "rps": len(lat) / wall if wall else 0.0,
            "p50": percentile(lat, 0.50), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99), "max": lat[-1] if lat else 0.0,
            "mean": statistics.fmean(lat) if lat else 0.0, "pages": mixes[0],
            "by_page": {kind: (len(v), percentile(sorted(v), 0.50), percentile(sorted(v), 0.95))
                        for kind, v in sorted(by_page.items())}}


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


def page_kind(path: str) -> str:
    """The page a path shows, without the user, task or search word it names."""
    path = path.split("?")[0]
    for prefix in ("/users/", "/tasks/", "/api/v1/users/"):
        if path.startswith(prefix) and path != prefix:
            return prefix + "<id>" + ("/tasks" if path.endswith("/tasks") and prefix.startswith("/api") else "")
    return path


def print_pages(r: dict) -> None:
    print("  per page: " + "; ".join(f"{kind} {n} req p50 {p50 * 1000:.0f} p95 {p95 * 1000:.0f} ms"
                                     for kind, (n, p50, p95) in r["by_page"].items()))


def row(label: str, r: dict) -> str:
    return (f"| {label} | {r['clients']} | {r['seconds']:.0f} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | "
            f"{r['p50'] * 1000:.0f} | {r['p95'] * 1000:.0f} | {r['p99'] * 1000:.0f} | {r['max'] * 1000:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running reporter (loopback only); default: start `swarmlens up --demo` here")
    ap.add_argument("--login", default="admin")
    ap.add_argument("--password", help="ops password (with --url)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=None, help="gunicorn threads per worker of the started stack "
                                                              "(default: SWARMLENS_REPORTER_THREADS)")
    ap.add_argument("--workers", type=int, default=None, help="gunicorn workers of the started stack "
                                                              "(default: SWARMLENS_REPORTER_WORKERS)")
    ap.add_argument("--compare", action="store_true",
                    help="run the earlier layouts first (2 sync workers and 2 x 8 threads computing every page, "
                         "2 x 8 threads reusing results), then the default")
    ap.add_argument("--quick", action="store_true", help="10 clients for 10 s")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each layout this many times, each on a stack of its own (figures on this "
                         "2-core machine vary by up to a third from run to run)")
    ap.add_argument("--no-reuse", action="store_true", help="start the stack with SWARMLENS_REPORTER_CACHE_BYTES=0 "
                                                            "(every page computed by ClickHouse)")
    ap.add_argument("--connection-close", action="store_true",
                    help="one connection per request (Connection: close) instead of keep-alive connections")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.seconds = 10, 10
    if args.clients < 1 or args.clients > 200 or args.seconds <= 0 or args.seconds > 600:
        ap.error("--clients is 1 to 200 and --seconds at most 600")

    if args.url:
        host = urlsplit(args.url).hostname or ""
        if host not in LOOPBACK:
            ap.error("the load test runs against a loopback address only")
        if not args.password:
            ap.error("--password is required with --url")
        r = run_load(args.url.rstrip("/"), args.login, args.password, args.clients, args.seconds,
                     args.connection_close)
        print(row(f"{args.url}", r))
        print_pages(r)
        if r["error_kinds"]:
            print("  errors:", ", ".join(r["error_kinds"]))
        return 0 if r["errors"] == 0 else 1

    from swarmlens import config as config_mod

    defaults = config_mod.load(environ={})
    workers_now = args.workers or defaults.SWARMLENS_REPORTER_WORKERS
    threads_now = args.threads or defaults.SWARMLENS_REPORTER_THREADS
    # (workers, threads, reuse of results): the earlier layouts (sync workers, then 2 x 8 threads,
    # each computing every page; 2 x 8 threads reusing results), then today's default.
    plans = ([(2, 1, False), (2, 8, False), (2, 8, True), (workers_now, threads_now, True)] if args.compare
             else [(workers_now, threads_now, not args.no_reuse)])
    plans = [plan for plan in plans for _ in range(max(1, args.repeat))]
    results = []
    for workers, threads, reuse in plans:
        data_dir = tempfile.mkdtemp(prefix="swarmlens-load-")
        proc, base = start_stack(data_dir, threads, workers, reuse)
        try:
            wait_for("the reporter", lambda: requests.get(base + "/healthz", timeout=2).status_code == 200
                     or requests.get(base + "/login", timeout=2).status_code == 200, 300, proc)
            cred = Path(data_dir, "admin-credentials").read_text()
            password = re.search(r"^password=(.+)$", cred, re.M).group(1).strip()
            probe = sign_in(base, args.login, password)
            wait_for("demo tasks", lambda: (probe.get(base + "/search?format=json", timeout=30).json()
                                            .get("tasks") or []) != [], 300, proc)
            # The demo first backfills its 600 tasks as fast as it can; the load starts once it sends
            # its steady task every 2 s, as a running stack does.
            demo_log = Path(data_dir, "logs", "demo.log")
            wait_for("the demo's backfill", lambda: demo_log.exists() and "running a task every" in demo_log.read_text(),
                     600, proc)
            sys.stderr.write("\n")
            r = run_load(base, args.login, password, args.clients, args.seconds, args.connection_close)
            label = f"{workers} worker{'s' if workers > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}" + \
                    (" (gthread)" if threads > 1 else " (sync)") + \
                    (", results reused while the data is unchanged" if reuse else ", every page computed")
            results.append((label, r))
            print(row(label, r), flush=True)
            print_pages(r)
            if r["error_kinds"]:
                print("  errors:", ", ".join(r["error_kinds"]))
        except SystemExit:
            log = Path(data_dir, "bench-up.log")
            if log.exists():
                sys.stderr.write("\n`swarmlens up` said:\n" + log.read_text()[-3000:] + "\n")
            raise
        finally:
            import signal

            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone
            shutil.rmtree(data_dir, ignore_errors=True)

    table = ["| reporter | clients | s | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|---|---|---|"] + [row(label, r) for label, r in results]
    print("\n".join(table))
    if args.write_docs:
        cpu = platform.processor() or platform.machine()
        text = (f"{SECTION}\n\n"
                f"`python -m bench.bench_load{' --compare' if args.compare else ''}`: `swarmlens up --demo` on free loopback "
                f"ports, {args.clients} clients signed in as ops, each requesting the next page of a mix as soon "
                f"as the last one answered, for {args.seconds:.0f} s. Pages: {', '.join(results[-1][1]['pages'])}. "
                f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, shared with other "
                f"work while measured.\n\n" + "\n".join(table) + "\n")
        write_section(str(ROOT / "docs" / "benchmarks.md"), SECTION, text)
    return 0 if all(r["errors"] == 0 for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
