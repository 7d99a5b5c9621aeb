"""Fault injection on `swarmlens up`: sent / acknowledged / stored / lost / duplicated spans per fault.

    .venv/bin/python -m bench.bench_faults                 # every fault, 40 s runs at 2,000 spans/s
    .venv/bin/python -m bench.bench_faults --only kill9-clickhouse --duration 20
    .venv/bin/python -m bench.bench_faults --write-docs    # also replace the table in docs/reliability.md

Each fault is a run of its own: `swarmlens up` on a fresh data directory and free loopback ports,
task-shaped OTLP/HTTP requests (8 spans a task, 64 spans a request) at --rate spans/s from two
senders that retry like the OpenTelemetry SDK (refused connections and 429/502/503/504, backoff,
given up after 10 s), the fault at --fault-at seconds, the load stopped at --duration. Then:
stored = spans found in otel_traces by (TraceId, SpanId); lost = acknowledged and not stored;
duplicates = stored more than once; and `swarmlens db check` says whether every rollup equals its
details. The harness is tests/support/swarmlens_testing/faults.py, which the bounded tests in
tests/pipeline/test_crash_safety.py use too.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.benchlib import cpu_model
from swarmlens_testing.faults import Load, Stack

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- faults table: begin -->", "<!-- faults table: end -->"


def _kill(stack: Stack, name: str, sig=signal.SIGKILL) -> None:
    before = stack.restarts(name)
    os.kill(stack.pid(name), sig)
    stack.wait_restarted(name, before)


def fault_sigstop(stack: Stack, seconds: float) -> str:
    pid = stack.pid("clickhouse")
    os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    os.kill(pid, signal.SIGCONT)
    return f"SIGSTOP of the embedded ClickHouse for {seconds:.0f} s"


def fault_tree(stack: Stack, down: float) -> str:
    stack.kill_everything()
    time.sleep(down)
    stack.start()
    return f"kill -9 of the whole `up` tree, `up` started again {down:.0f} s later"


def fault_kills(stack: Stack, kills: int, every: float) -> str:
    names = ["clickhouse", "ingest"]
    for n in range(kills):
        name = names[n % 2]
        started = time.monotonic()
        _kill(stack, name)
        print(f"    kill {n + 1}/{kills}: {name}", flush=True)
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return f"{kills} kill -9 under load, ClickHouse and the receiver in turn, every {every:.0f} s"


def fault_disk_full(stack: Stack, seconds: float) -> str:
    """The log's filesystem (a tmpfs of its own, see run_one) kept full to the last byte for
    ``seconds``, then freed: the receiver refuses with 503 (writes cut back), senders retry."""
    ingest = stack.data_dir / "ingest"
    filler = ingest / "filler"
    refused_before = _status_counts(stack).get("wal_write_failures", 0)
    # ClickHouse behind as well (the receiver holds its inserts back, as for a rollup check): the
    # log cannot free space by inserting, and the disk stays full.
    pause = ingest / "pause"
    pause.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + seconds
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while time.monotonic() < deadline:
            for size in (64 << 10, 512, 1):  # keeps it full: the inserter frees space as it empties the log
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
            time.sleep(0.02)
    finally:
        os.close(fd)
    filler.unlink()
    pause.unlink()
    time.sleep(2.5)  # status.json could not be written while the disk was full
    refused = _status_counts(stack).get("wal_write_failures", 0) - refused_before
    return (f"disk full for {seconds:.0f} s with ClickHouse behind (the log's own 64 MiB tmpfs filled to the "
            f"last byte, inserts held back; SWARMLENS_INGEST_MIN_FREE_BYTES=0: {refused:,} writes failed and were "
            "cut back)")


def _status_counts(stack: Stack) -> dict:
    import json

    try:
        return json.loads((stack.data_dir / "ingest" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def fault_damaged_log(stack: Stack, stall: float) -> str:
    """ClickHouse stopped (SIGSTOP) so the log holds a backlog; three of its sealed segments
    damaged on disk (4 bytes flipped in a record, the end cut off, garbage written in); ClickHouse
    continued: the receiver quarantines the damaged records and inserts the rest."""
    import json

    pid = stack.pid("clickhouse")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(stall)
        wal = stack.data_dir / "ingest" / "wal"
        try:
            inflight = json.loads((wal / "inflight.json").read_text().strip() or "{}")
        except (OSError, ValueError):
            inflight = {}
        last_in_flight = int(inflight.get("last", "0" * 20)[:20] or 0)
        segments = sorted(p for p in wal.glob("*.v2.wal") if int(p.name[:20]) > last_in_flight + 1)[:-2]
        picked = segments[len(segments) // 4::max(1, len(segments) // 4)][:3]
        assert len(picked) == 3, f"too few segments to damage: {len(segments)}"
        flip, cut, garbage = picked
        data = bytearray(flip.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
        flip.write_bytes(bytes(data))
        with open(cut, "r+b") as f:
            f.truncate(os.path.getsize(cut) - 100)
        data = bytearray(garbage.read_bytes())
        data[len(data) // 3:len(data) // 3] = os.urandom(500)
        garbage.write_bytes(bytes(data))
    finally:
        os.kill(pid, signal.SIGCONT)
    return (f"damaged log: ClickHouse stopped {stall:.0f} s, then 3 waiting segments damaged "
            "(4 bytes flipped, the last 100 bytes cut off, 500 bytes of garbage written in)")


FAULTS = {
    "none": ("no fault", None),
    "sigstop-clickhouse": (None, lambda st, a: fault_sigstop(st, a.stop_seconds)),
    "kill9-clickhouse": ("kill -9 of the embedded ClickHouse (restarted by `up`)", lambda st, a: _kill(st, "clickhouse")),
    "kill9-receiver": ("kill -9 of the OTLP receiver (restarted by `up`)", lambda st, a: _kill(st, "ingest")),
    "kill9-reporter": ("kill -9 of the reporter (restarted by `up`)", lambda st, a: _kill(st, "reporter")),
    "restart-receiver": ("SIGTERM of the OTLP receiver, a collector restart (restarted by `up`)",
                         lambda st, a: _kill(st, "ingest", signal.SIGTERM)),
    "kill9-tree": (None, lambda st, a: fault_tree(st, a.down_seconds)),
    "kills": (None, lambda st, a: fault_kills(st, a.kills, a.kill_every)),
    "disk-full": (None, lambda st, a: fault_disk_full(st, a.full_seconds)),
    "damaged-log": (None, lambda st, a: fault_damaged_log(st, a.stall_seconds)),
    "kill9-rotel": ("for comparison: kill -9 of rotel 0.0.1a15 (SWARMLENS_COLLECTOR=rotel, restarted by `up`)",
                    lambda st, a: _kill(st, "rotel")),
}


def run_one(name: str, args, workdir: Path) -> dict:
    label, action = FAULTS[name]
    collector = "rotel" if name == "kill9-rotel" else "swarmlens"
    data = workdir / name
    env = {}
    mounted = None
    if name == "disk-full":
        # The log on a filesystem of its own, so that filling it fills nothing else (root only).
        mounted = data / "data" / "ingest"
        mounted.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mounted)], check=True)
        env["SWARMLENS_INGEST_MIN_FREE_BYTES"] = "0"
    stack = Stack(data / "data", data / "up.log", collector=collector, env=env).start()
    try:
        return _measure(name, label, action, stack, args, mounted)
    except BaseException:
        stack.stop()
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False)
        raise


def _measure(name: str, label, action, stack: Stack, args, mounted) -> dict:
    load = Load(stack.otlp_url, f"{name}-{uuid.uuid4().hex[:6]}", rate=args.rate).start()
    t0 = time.monotonic()
    try:
        if action is not None:
            time.sleep(args.fault_at)
            print(f"  {name}: fault at {time.monotonic() - t0:.1f} s", flush=True)
            said = action(stack, args)
            label = label or said
        remaining = args.duration - (time.monotonic() - t0)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        load.stop()
    took = time.monotonic() - t0
    client = stack.client()
    try:
        # A damaged record's spans never arrive: do not wait the whole timeout for them.
        tally = load.tally(client, timeout=60 if name == "damaged-log" else 180)
    finally:
        client.close()
    check = stack.db_check()
    repairs = re.findall(r"partition\(s\) repaired: ([^\n]*)", stack.output())
    quarantine = _status_counts(stack).get("quarantine") or {}
    stack.stop()
    if mounted is not None:
        subprocess.run(["umount", "-l", str(mounted)], check=False)
    ok = check.returncode == 0 and "every rollup equals its details" in check.stdout
    if quarantine.get("records") or quarantine.get("segments_cut_short"):
        per_request = load.tasks_per_request * 8
        label += (f"; {quarantine['records']} damaged record(s) quarantined ({quarantine['records'] * per_request:,} "
                  f"spans), {quarantine.get('segments_cut_short', 0)} segment(s) cut short")
    row = {"fault": label, "seconds": took, **tally, "rollups": "equal" if ok else "DIFFER",
           "repairs": "; ".join(repairs),
           "quarantined_spans": int(quarantine.get("records") or 0) * load.tasks_per_request * 8}
    print(f"  {name}: {row}", flush=True)
    return row


def table(rows: list[dict]) -> str:
    out = ["| fault | sent (spans/s achieved) | acknowledged | stored | lost (acknowledged, not stored) | duplicates "
           "| rollups after |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        rollups = r["rollups"] + (f" (repaired by `up`: {r['repairs']})" if r["repairs"] else "")
        out.append(f"| {r['fault']} | {r['sent']:,} ({r['sent'] / r['seconds']:,.0f}/s) | {r['acknowledged']:,} | {r['stored']:,} | {r['lost']:,} | "
                   f"{r['duplicates']:,} | {rollups} |")
    return "\n".join(out)


def machine() -> str:
    cpu = cpu_model()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=sorted(FAULTS), help="run only this fault (repeatable)")
    p.add_argument("--rate", type=float, default=2000.0, help="spans per second offered (default 2000)")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load per run (default 40)")
    p.add_argument("--fault-at", type=float, default=10.0, help="seconds into the run of the fault (default 10)")
    p.add_argument("--stop-seconds", type=float, default=30.0, help="length of the SIGSTOP (default 30)")
    p.add_argument("--down-seconds", type=float, default=5.0, help="pause before `up` starts again (default 5)")
    p.add_argument("--kills", type=int, default=20, help="kills of the 'kills' run (default 20)")
    p.add_argument("--kill-every", type=float, default=8.0,
                   help="seconds between those kills (default 8; one child is killed every 16 s, which stays under "
                        "`up`'s give-up rule of 5 crashes of one child within 60 s)")
    p.add_argument("--full-seconds", type=float, default=15.0, help="how long the disk stays full (default 15)")
    p.add_argument("--stall-seconds", type=float, default=10.0,
                   help="ClickHouse stopped before the log is damaged (default 10)")
    p.add_argument("--write-docs", action="store_true", help="replace the faults table in docs/reliability.md")
    args = p.parse_args()
    names = args.only or list(FAULTS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="swarmlens-faults-") as tmp:
        for name in names:
            print(f"fault {name} ...", flush=True)
            a = argparse.Namespace(**vars(args))
            if name == "kills":
                a.duration = max(args.duration, args.fault_at + args.kills * args.kill_every + 5)
            if name == "disk-full":
                a.duration = max(args.duration, args.fault_at + args.full_seconds + 15)
            if name == "damaged-log":
                a.duration = max(args.duration, args.fault_at + args.stall_seconds + 15)
            if name == "sigstop-clickhouse":
                a.duration = max(args.duration, args.fault_at + args.stop_seconds + 10)
            rows.append(run_one(name, a, Path(tmp)))
    text = table(rows)
    command = "python -m bench.bench_faults " + " ".join(sys.argv[1:])
    print()
    print(text)
    if args.write_docs:
        doc = DOC.read_text()
        block = (f"{BEGIN}\nMeasured on {time.strftime('%Y-%m-%d')} with `.venv/bin/python {command.strip()}` "
                 f"({machine()}; {args.rate:,.0f} spans/s offered):\n\n{text}\n{END}")
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: block, doc, flags=re.S)
        DOC.write_text(doc)
        print(f"wrote {DOC}")
    # A damaged record's spans are lost by definition: that row is good when it lost those and no more.
    bad = [r for r in rows if "rotel" not in r["fault"] and (r["lost"] != r.get("quarantined_spans", 0)
                                                            or r["duplicates"] or r["rollups"] != "equal")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
