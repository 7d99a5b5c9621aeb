"""`swarmlens status`: what `swarmlens up` runs on this data directory, and what is behind.

Reads what the stack writes about itself (``DATA_DIR/up-state.json``, by the supervisor every
second, and ``DATA_DIR/ingest/status.json``, by the OTLP receiver), checks that the processes
named there live, and asks ClickHouse whether it answers. Exits 0 when everything runs and nothing
is stuck, 1 otherwise; ``--json`` prints the same facts for scripts.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from swarmlens import config as config_mod


def add_arguments(p) -> None:
    p.add_argument("--data-dir", help="data directory of the stack (default: SWARMLENS_DATA_DIR)")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.epilog = "exit status: 0 running and healthy, 1 running with a problem, 3 not running"


def _alive(pid) -> bool:
    from swarmlens.stack.state import pid_alive

    return pid_alive(pid)


def _ago(ts) -> str:
    if not ts:
        return "never"
    s = time.time() - float(ts)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


PING_SECONDS = 0.5     # a slower answer is "unknown", not a failure: the engine may only be loaded
ENGINE_SECONDS = 0.9   # everything asked of the engine, so that status answers within a second


def _param(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param(v) if not isinstance(v, str) else
                              "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in value) + "]"
    return str(value)


def _http_runner(url: str, user: str, password: str, deadline: float):
    """Runs SQL with typed parameters over the HTTP interface, each query within what is left of
    ``deadline`` (time.monotonic())."""
    import urllib.parse

    def run(sql: str, params: dict) -> list[dict]:
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise TimeoutError("no time left")
        query = {"default_format": "JSONEachRow", "max_execution_time": str(max(1, int(left + 0.999))),
                 **{f"param_{k}": _param(v) for k, v in params.items()}}
        req = urllib.request.Request(url.rstrip("/") + "/?" + urllib.parse.urlencode(query), data=sql.encode(),
                                     headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password})
        try:
            with urllib.request.urlopen(req, timeout=left) as r:  # noqa: S310 (URL from the stack's state)
                return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(exc.read().decode(errors="replace")[:500]) from None
    return run


def _engine(url: str, cfg) -> dict:
    """What the engine says, within ENGINE_SECONDS: "ok", "unknown" (slower than that: loaded, not
    down), "down" (refused or an error) or "damaged" (with the findings), and a message."""
    import threading

    from swarmlens.store import health

    out: dict = {"state": "unknown", "message": f"ClickHouse did not answer within {ENGINE_SECONDS:g} s (loaded?)"}
    deadline = time.monotonic() + ENGINE_SECONDS

    def ask() -> None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=PING_SECONDS) as r:
                r.read(64)
        except urllib.error.HTTPError as exc:
            out.update(state="down", message=f"ClickHouse at {url} answered {exc.code} to /ping")
            return
        except Exception as exc:
            if "timed out" in str(exc) or isinstance(exc, TimeoutError):
                out.update(state="unknown", message=f"ClickHouse at {url} did not answer /ping within "
                                                    f"{PING_SECONDS:g} s (loaded, or stalled)")
            else:
                out.update(state="down", message=f"ClickHouse at {url} does not answer /ping ({exc})")
            return
        out.update(state="ok", message="answers")
        try:
            run = _http_runner(url, cfg.SWARMLENS_CLICKHOUSE_USER, cfg.SWARMLENS_CLICKHOUSE_PASSWORD, deadline)
            findings = health.quick_findings(run, [cfg.SWARMLENS_OTEL_DATABASE, cfg.SWARMLENS_DATABASE])
        except Exception as exc:  # too slow, or the catalogue not there yet: the ping answered
            out.update(damage="unknown", damage_message=str(exc)[:200])
            return
        out["damage"] = "ok"
        out["findings"] = [{"table": f.table, "part": f.part, "problem": f.problem, "blocking": f.blocking}
                           for f in findings]
        if findings:
            out.update(state="damaged" if any(f.blocking for f in findings) else "ok",
                       damage="damaged", message=health.verdict(findings))

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    t.join(ENGINE_SECONDS + 0.05)
    return dict(out)


def gather(data_dir: str, cfg=None) -> dict:
    from swarmlens.ingest.state import read_status
    from swarmlens.stack.state import read_state

    up = read_state(data_dir)
    ingest = read_status(os.path.join(data_dir, "ingest"))
    facts: dict = {"data_dir": data_dir, "up": None, "children": [], "ingest": None, "problems": []}
    if not up:
        facts["problems"].append(f"no `swarmlens up` has run on {data_dir}")
        return facts
    up_alive = _alive(up.get("pid"))
    facts["up"] = {"state": up.get("state") if up_alive or up.get("state") == "stopped" else "dead",
                   "pid": up.get("pid"), "updated_at": up.get("updated_at"), "urls": up.get("urls", {}),
                   "events": up.get("events", [])}
    if not up_alive:
        if up.get("state") != "stopped":
            facts["problems"].append("`swarmlens up` is not running and did not stop cleanly "
                                     "(its next start checks and repairs the rollups)")
        return facts
    for c in up.get("children", []):
        running = _alive(c.get("pid")) and c.get("running")
        facts["children"].append({**c, "running": bool(running)})
        if not running:
            facts["problems"].append(f"{c['name']} is not running" +
                                     (" (restarting)" if c.get("restarting") else ""))
    ch_url = facts["up"]["urls"].get("clickhouse")
    if ch_url:
        engine = facts["clickhouse"] = _engine(ch_url, cfg or config_mod.load({"SWARMLENS_DATA_DIR": data_dir}))
        if engine["state"] in ("down", "damaged"):
            facts["problems"].append(engine["message"])
    facts["confinement"] = _confinement(data_dir, facts["problems"])
    if ingest:
        counts = ingest.get("counts", {})
        facts["ingest"] = {"alive": _alive(ingest.get("pid")), "backlog_bytes": ingest.get("backlog_bytes", 0),
                           "backlog_segments": ingest.get("backlog_segments", 0), "paused": ingest.get("paused"),
                           "spans_accepted": counts.get("spans_accepted", 0),
                           "spans_inserted": counts.get("spans_inserted", 0),
                           "requests_refused": counts.get("requests_refused", 0),
                           "insert_failures": counts.get("insert_failures", 0),
                           "segments_rejected": counts.get("segments_rejected", 0),
                           "repairs": {k: v for k, v in ingest.get("repairs", {}).items() if v},
                           "quarantine": ingest.get("quarantine") or {},
                           "wal_write_failures": ingest.get("wal_write_failures", 0),
                           "wal_refused_low_space": ingest.get("wal_refused_low_space", 0),
                           "free_bytes": ingest.get("free_bytes"), "min_free_bytes": ingest.get("min_free_bytes"),
                           "last_insert_at": ingest.get("last_insert_at"), "last_error": ingest.get("last_error"),
                           "last_error_at": ingest.get("last_error_at"), "updated_at": ingest.get("updated_at")}
        behind = ingest.get("backlog_segments", 0)
        stale = time.time() - float(ingest.get("updated_at") or 0) > 10
        if behind > 25 or stale:
            facts["problems"].append(
                f"the OTLP receiver is behind: {behind} segment(s), {ingest.get('backlog_bytes', 0)} bytes not yet "
                f"in ClickHouse; last insert {_ago(ingest.get('last_insert_at'))}"
                + (f"; last error: {ingest.get('last_error')}" if ingest.get("last_error") else ""))
        q = ingest.get("quarantine") or {}
        if q.get("records") or q.get("segments_cut_short"):
            facts["problems"].append(
                f"the write-ahead log was damaged: {q.get('records', 0)} record(s), {q.get('bytes', 0)} byte(s) "
                f"moved to {q.get('directory')}" + (f", {q['segments_cut_short']} segment(s) cut short"
                                                   if q.get("segments_cut_short") else "")
                + " (each .why file says where and why; acknowledged spans in them were not stored)")
        free, reserve = ingest.get("free_bytes"), ingest.get("min_free_bytes") or 0
        if free is not None and reserve and free < reserve:
            facts["problems"].append(f"the write-ahead log's disk has {free} bytes free, below the reserve of "
                                     f"{reserve} (SWARMLENS_INGEST_MIN_FREE_BYTES): requests get 503")
        if counts.get("segments_rejected"):
            facts["problems"].append(f"{counts['segments_rejected']} segment(s) refused by ClickHouse, kept in "
                                     f"{os.path.join(data_dir, 'ingest', 'rejected')}")
    return facts


def _confinement(data_dir: str, problems: list) -> dict | None:
    """What confines the embedded endpoint, as it recorded at start (commands/clickhouse.py)."""
    from swarmlens.commands.clickhouse import CONFINEMENT_FILE

    try:
        with open(os.path.join(data_dir, "clickhouse", CONFINEMENT_FILE), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    kernel = (doc.get("kernel") or {}).get("kernel")
    if kernel != "landlock":
        problems.append("the embedded ClickHouse runs without the kernel's confinement "
                        f"({doc.get('summary', 'kernel layer off')}); see docs/embedded-clickhouse.md")
    return doc


# Exit codes a script can use (as `systemctl status` does): 0 running and healthy, 1 running with a
# problem, 3 not running (stopped, never started, or ended without stopping).
EXIT_OK, EXIT_PROBLEM, EXIT_NOT_RUNNING = 0, 1, 3


def exit_code(facts: dict) -> int:
    up = facts.get("up")
    if up is None or up.get("state") in ("stopped", "dead"):
        return EXIT_NOT_RUNNING
    return EXIT_PROBLEM if facts["problems"] else EXIT_OK


def run(args) -> int:
    cfg = config_mod.load({"SWARMLENS_DATA_DIR": args.data_dir})
    data_dir = os.path.abspath(os.path.expanduser(cfg.SWARMLENS_DATA_DIR))
    facts = gather(data_dir, cfg)
    code = exit_code(facts)
    if args.json:
        print(json.dumps(facts, indent=1))
        return code
    up = facts["up"]
    if up is None:
        print(f"swarmlens status: {facts['problems'][0]}")
        return code
    print(f"swarmlens up: {up['state']} (pid {up['pid']}), data in {data_dir}")
    for c in facts["children"]:
        state = "running" if c["running"] else ("restarting" if c.get("restarting") else "not running")
        extra = f", {c['restarts']} restart(s)" if c.get("restarts") else ""
        extra += f", last exit status {c['last_exit']}" if c.get("last_exit") is not None else ""
        print(f"  {c['name']:<11} {state:<12} pid {c['pid']}, up since {_ago(c.get('started_at'))}{extra}")
    ing = facts["ingest"]
    if ing:
        print(f"  ingest log  {ing['backlog_segments']} segment(s), {ing['backlog_bytes']} bytes waiting for ClickHouse"
              + (" (inserts held back for a rollup check)" if ing.get("paused") else "")
              + f"; last insert {_ago(ing['last_insert_at'])}")
        print(f"  spans       {ing['spans_accepted']} acknowledged, {ing['spans_inserted']} inserted since the receiver "
              f"started; {ing['requests_refused']} request(s) refused")
        if ing["repairs"]:
            print("  repaired    " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(ing["repairs"].items())))
        q = ing.get("quarantine") or {}
        if q.get("records") or q.get("torn_records") or q.get("segments_cut_short"):
            print(f"  quarantine  {q.get('records', 0)} damaged record(s), {q.get('bytes', 0)} bytes; "
                  f"{q.get('torn_records', 0)} cut short by a crash (never acknowledged); in {q.get('directory')}")
        if ing.get("wal_write_failures") or ing.get("wal_refused_low_space"):
            print(f"  disk        {ing.get('wal_write_failures', 0)} write(s) refused by the disk, "
                  f"{ing.get('wal_refused_low_space', 0)} request(s) refused below the free-space reserve")
        if ing.get("last_error"):
            print(f"  last error  {ing['last_error']} ({_ago(ing.get('last_error_at'))})")
    engine = facts.get("clickhouse")
    if engine:
        print(f"  clickhouse  {engine['state']}: {engine['message']}")
    if facts.get("confinement"):
        print(f"  confinement {facts['confinement'].get('summary', '')}")
    for line in up.get("events", [])[-5:]:
        print(f"  event       {line}")
    for p in facts["problems"]:
        print(f"problem: {p}")
    return code
