"""`swarmlens restore DIR`: a backup of `swarmlens backup` back into a stopped data directory.

The data directory's ClickHouse (``DATA_DIR/clickhouse``) must be empty or absent; with
``--replace`` what is there is moved aside to ``clickhouse.before-restore-TIME`` (and the log to
``ingest/wal.before-restore-TIME``), never deleted. The restore starts the embedded ClickHouse on
the directory for itself, creates the schema, loads every table (``swarmlens.store.backup``),
compares each table's row count and checksum with the backup's, and stops it. The backed-up log
goes to ``ingest/wal/``: the next `swarmlens up` inserts the spans it holds. The secrets go back
too, so the same password and sessions keep working. Exits 1 when a table differs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from swarmlens import config as config_mod


def add_arguments(p) -> None:
    p.add_argument("directory", metavar="DIR", help="a backup written by `swarmlens backup`")
    p.add_argument("--data-dir", help="data directory to restore into (default: SWARMLENS_DATA_DIR); "
                                      "no `swarmlens up` may run on it")
    p.add_argument("--replace", action="store_true",
                   help="move the data directory's ClickHouse and log aside instead of refusing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_engine(ch_dir: str, password: str, log_path: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "swarmlens.commands", "clickhouse", "--data-dir", ch_dir,
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "SWARMLENS_CLICKHOUSE_PASSWORD": password})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the embedded ClickHouse did not start; see {log_path}") from None
            time.sleep(0.1)


def run(args) -> int:
    from swarmlens.store import backup
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import migrate_from_config

    source = os.path.abspath(args.directory)
    try:
        manifest = backup.read_manifest(source)
    except ValueError as exc:
        print(f"swarmlens restore: {exc}", file=sys.stderr)
        return 2
    bad = backup.verify_files(source, manifest)
    if bad:
        print("swarmlens restore: the backup is damaged: " + "; ".join(bad[:5]), file=sys.stderr)
        return 1
    cfg = config_mod.load({"SWARMLENS_DATA_DIR": args.data_dir})
    data_dir = os.path.abspath(os.path.expanduser(cfg.SWARMLENS_DATA_DIR))
    os.makedirs(os.path.join(data_dir, "logs"), exist_ok=True)
    lock = os.open(os.path.join(data_dir, "up.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        print(f"swarmlens restore: `swarmlens up` runs on {data_dir}; stop it first", file=sys.stderr)
        return 2
    try:
        return _restore(args, source, manifest, cfg, data_dir)
    finally:
        os.close(lock)  # releases the lock


def _restore(args, source: str, manifest: dict, cfg, data_dir: str) -> int:
    from swarmlens.store import backup
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import migrate_from_config

    started = time.monotonic()
    ch_dir = os.path.join(data_dir, "clickhouse")
    wal_dir = os.path.join(data_dir, "ingest", "wal")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (ch_dir, wal_dir):
        if os.path.isdir(path) and [n for n in os.listdir(path) if n != "log-id"]:
            if not args.replace:
                print(f"swarmlens restore: {path} is not empty; restore into a new data directory, or give "
                      "--replace to move it aside", file=sys.stderr)
                return 2
            os.replace(path, f"{path}.before-restore-{stamp}")
            print(f"moved {path} aside to {path}.before-restore-{stamp}", flush=True)
    # The secrets first: the engine started below takes the restored password.
    for name in manifest.get("secrets", []):
        with open(os.path.join(source, "secrets", name), encoding="utf-8") as f:
            config_mod.write_private_file(os.path.join(data_dir, name), f.read())
    otel_db, db = manifest["databases"]
    password = config_mod.clickhouse_password(data_dir)
    proc, url = _start_engine(ch_dir, password, os.path.join(data_dir, "logs", "restore-clickhouse.log"))
    try:
        target = config_mod.load({"SWARMLENS_DATA_DIR": data_dir, "SWARMLENS_CLICKHOUSE_URL": url,
                                  "SWARMLENS_CLICKHOUSE_PASSWORD": password, "SWARMLENS_OTEL_DATABASE": otel_db,
                                  "SWARMLENS_DATABASE": db})
        print(f"restoring {source} into {data_dir} (databases {otel_db} and {db})", flush=True)
        migrate_from_config(target)
        client = connect(target)
        try:
            differ = backup.load(client, source, manifest, progress=lambda s: print(s, flush=True))
        finally:
            client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    os.makedirs(wal_dir, exist_ok=True)
    segments = 0
    backed_log = os.path.join(source, "ingest", "wal")
    for name in sorted(os.listdir(backed_log)) if os.path.isdir(backed_log) else []:
        shutil.copy2(os.path.join(backed_log, name), os.path.join(wal_dir, name))
        segments += name.endswith(".wal")
    rows = sum(t["rows"] for t in manifest["tables"])
    took = f"{time.monotonic() - started:.1f} s"
    if differ:
        print("restore DIFFERS from the backup: " + "; ".join(differ))
        return 1
    print(f"restored {len(manifest['tables'])} tables, {rows:,} rows, each equal to the backup (row count and "
          f"checksum); {segments} log segment(s) for the next `swarmlens up` to insert ({took})")
    return 0
