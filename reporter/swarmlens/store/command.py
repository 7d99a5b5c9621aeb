"""`swarmlens db migrate` and `swarmlens db status`."""

from __future__ import annotations

import argparse
import sys
import time

from swarmlens import config as config_module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION")
    m = sub.add_parser("migrate", help="bring the schema up to date (safe to run at every start)",
                       description="Apply every pending migration of swarmlens/store/schema, in order.")
    _common(m)
    m.add_argument("--cluster", metavar="NAME",
                   help="ClickHouse cluster: ON CLUSTER DDL, Replicated and Distributed engines "
                        "(default: SWARMLENS_CLUSTER)")
    m.add_argument("--dry-run", action="store_true",
                   help="print the SQL every migration would run, rendered for this config; connects to nothing")
    s = sub.add_parser("status", help="list migrations: applied, pending, or changed since applied; "
                                      "exits 1 unless the schema is up to date")
    _common(s)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the same as --clickhouse-url")


def run(args: argparse.Namespace) -> int:
    from swarmlens.store import migrate as mig
    from swarmlens.store.client import StoreError, connect

    action = getattr(args, "db_command", None)
    if action not in ("migrate", "status"):
        print("usage: swarmlens db {migrate,status} [--url URL]", file=sys.stderr)
        return 2
    from swarmlens.cli import clickhouse_overrides

    cfg = config_module.load({**clickhouse_overrides(args),
                              "SWARMLENS_CLICKHOUSE_URL": getattr(args, "clickhouse_url", None) or args.url,
                              "SWARMLENS_CLUSTER": getattr(args, "cluster", None)})
    try:
        target = mig.Target.from_config(cfg)
        if action == "migrate" and args.dry_run:
            print(mig.render_all(target))
            return 0
        client = connect(cfg)
        try:
            if action == "status":
                return _status(client, target)
            where = f"{cfg.SWARMLENS_CLICKHOUSE_URL}, databases {target.otel_database} and {target.database}"
            print(f"migrating {where}" + (f" on cluster {target.cluster}" if target.cluster else ""), flush=True)
            started = time.monotonic()
            applied = mig.migrate(client, target, progress=lambda line: print(line, flush=True))
            total = len(mig.load_migrations())
            print(f"schema up to date: {total} migrations, {len(applied)} applied now "
                  f"in {time.monotonic() - started:.2f} s", flush=True)
            return 0
        finally:
            client.close()
    except StoreError as exc:
        print(f"swarmlens db {action}: {exc}", file=sys.stderr)
        return 1


def _status(client, target) -> int:
    from swarmlens.store import migrate as mig

    rows = mig.status(client, target)
    for st in rows:
        when = f" at {st.applied.applied_at:%Y-%m-%d %H:%M:%S}" if st.applied else ""
        note = " (file differs from what was applied)" if st.state == "changed" else ""
        print(f"  {st.migration.label:<40} {st.state}{when}{note}")
    pending = sum(st.state != "applied" for st in rows)
    print("schema up to date" if not pending else f"{pending} of {len(rows)} migrations not applied as they are")
    return 0 if not pending else 1
