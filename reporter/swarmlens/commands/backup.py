"""`swarmlens backup DIR`: a consistent backup of a running stack (or of a ClickHouse server).

What it writes into DIR (which must be new or empty):

- every table of both databases, partition by partition, in ClickHouse's Native format, with each
  table's row count and checksum in ``manifest.json`` (``swarmlens.store.backup``);
- the OTLP receiver's write-ahead log (``ingest/wal/``): the spans acknowledged and not yet inserted;
- the generated secrets of the data directory (``secrets/``, mode 0600): the ClickHouse password,
  the reporter's session key, the admin credentials, the endpoint's users file and the passwords of
  the components' ClickHouse users.

While the tables are exported and the log copied, the receiver of the data directory (if one runs)
holds its inserts back and keeps acknowledging into its log, and merges are stopped: the tables
and the log are copied at one point in time, and every span acknowledged before the backup started
is in one of the two. ``manifest.json`` is written last: without it a backup is incomplete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time

from swarmlens import config as config_mod

SECRETS = ("clickhouse-password", "reporter_secret_key", "admin-credentials",
           # the endpoint's users (scrypt hashes) and the passwords of up's own ClickHouse users
           "clickhouse/access/users.json", "clickhouse-users/swarmlens_ingest", "clickhouse-users/swarmlens_reporter")


def add_arguments(p) -> None:
    p.add_argument("directory", metavar="DIR", help="where to write the backup (new or empty)")
    p.add_argument("--data-dir", help="data directory of the stack (default: SWARMLENS_DATA_DIR)")
    p.add_argument("--url", help="ClickHouse HTTP interface (default: SWARMLENS_CLICKHOUSE_URL)")


def copy_log(wal_dir: str, target: str) -> int:
    """The log's segments and id; returns the number of segments copied."""
    os.makedirs(target, exist_ok=True)
    n = 0
    for name in sorted(os.listdir(wal_dir)) if os.path.isdir(wal_dir) else []:
        if name == "log-id" or name.endswith(".wal"):
            try:
                shutil.copy2(os.path.join(wal_dir, name), os.path.join(target, name))
            except FileNotFoundError:  # inserted and deleted meanwhile (no receiver held back)
                continue
            n += name.endswith(".wal")
    return n


def run(args) -> int:
    from swarmlens.ingest.state import inserts_paused
    from swarmlens.store import backup
    from swarmlens.store.client import StoreError, connect

    cfg = config_mod.load({"SWARMLENS_DATA_DIR": args.data_dir, "SWARMLENS_CLICKHOUSE_URL": args.url})
    data_dir = os.path.abspath(os.path.expanduser(cfg.SWARMLENS_DATA_DIR))
    target = os.path.abspath(args.directory)
    if os.path.exists(target) and os.listdir(target):
        print(f"swarmlens backup: {target} is not empty; give a new directory", file=sys.stderr)
        return 2
    os.makedirs(target, exist_ok=True)
    started = time.monotonic()
    databases = [cfg.SWARMLENS_OTEL_DATABASE, cfg.SWARMLENS_DATABASE]
    ingest_dir = os.path.join(data_dir, "ingest")
    try:
        client = connect(cfg)
    except StoreError as exc:
        print(f"swarmlens backup: {exc}", file=sys.stderr)
        return 1
    print(f"backing up {cfg.SWARMLENS_CLICKHOUSE_URL} ({', '.join(databases)}) and {data_dir} into {target}",
          flush=True)
    try:
        quiet = inserts_paused(ingest_dir) if os.path.isdir(ingest_dir) else contextlib.nullcontext()
        with quiet:
            manifest_tables = backup.export(client, databases, target, progress=lambda s: print(s, flush=True))
            segments = copy_log(os.path.join(ingest_dir, "wal"), os.path.join(target, "ingest", "wal"))
    except (StoreError, TimeoutError, ValueError) as exc:
        print(f"swarmlens backup: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    kept = []
    os.makedirs(os.path.join(target, "secrets"), mode=0o700, exist_ok=True)
    for name in SECRETS:
        source = os.path.join(data_dir, name)
        if os.path.isfile(source):
            with open(source, encoding="utf-8") as f:
                config_mod.write_private_file(os.path.join(target, "secrets", name), f.read())
            kept.append(name)
    manifest = manifest_tables
    manifest.update({"data_dir": data_dir, "log_segments": segments, "secrets": kept})
    backup.write_json(os.path.join(target, backup.MANIFEST), manifest)
    rows = sum(t["rows"] for t in manifest["tables"])
    size = sum(f["bytes"] for t in manifest["tables"] for f in t["files"])
    print(f"backup complete: {len(manifest['tables'])} tables, {rows:,} rows, {size / 1e6:.1f} MB; "
          f"{segments} log segment(s); secrets: {', '.join(kept) or 'none'}; in {target} "
          f"({time.monotonic() - started:.1f} s)")
    return 0
