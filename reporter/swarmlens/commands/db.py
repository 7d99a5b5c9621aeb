"""`swarmlens db migrate`, `db status`, `db check [--repair]` and `db users ...`."""

from __future__ import annotations

import argparse
import sys
import time

from swarmlens import config as config_module
from swarmlens.store import dbusers


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
    c = sub.add_parser("check", help="CHECK TABLE of every table, then every rollup (each table a materialized view "
                                     "feeds) against its detail table; --repair sets damaged parts aside and rebuilds "
                                     "what differs; exits 1 while anything is damaged or differs",
                       description="Check every part of every table (CHECK TABLE), then compare every table a "
                                   "materialized view feeds with what its source table says (read with FINAL), "
                                   "partition by partition. With --repair, set damaged parts aside (into the table's "
                                   "detached/ folder), rebuild each partition that differs from its source and swap it "
                                   "in, then compare again.")
    _common(c)
    c.add_argument("--repair", action="store_true",
                   help="set damaged parts aside and rebuild the partitions that differ, and say which")
    u = sub.add_parser("users", help="ClickHouse users and their roles (admin, reporter, ingest, analyst)",
                       description="Manage the ClickHouse users with CREATE USER / GRANT / DROP USER over the HTTP "
                                   "interface (the embedded endpoint keeps them in its data directory). Roles: "
                                   "admin (everything), reporter (reads; writes the application's tables), ingest "
                                   "(inserts spans), analyst (reads with limits, never the credential tables).")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION")
    _common(usub.add_parser("list", help="every user and its roles"))
    a = usub.add_parser("add", help="create a user; prints a generated password unless --password-stdin")
    _common(a)
    a.add_argument("name")
    a.add_argument("--role", action="append", required=True, choices=dbusers.ROLES, help="a role (repeatable)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    r = usub.add_parser("remove", help="drop a user")
    _common(r)
    r.add_argument("name")
    pw = usub.add_parser("password", help="set a new password; prints a generated one unless --password-stdin")
    _common(pw)
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for verb in ("grant", "revoke"):
        g = usub.add_parser(verb, help=f"{verb} a role")
        _common(g)
        g.add_argument("name")
        g.add_argument("role", choices=dbusers.ROLES)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the same as --clickhouse-url")


def run(args: argparse.Namespace) -> int:
    from swarmlens.store import migrate as mig
    from swarmlens.store.client import StoreError, connect

    action = getattr(args, "db_command", None)
    if action not in ("migrate", "status", "check", "users"):
        print("usage: swarmlens db {migrate,status,check,users} [--url URL]", file=sys.stderr)
        return 2
    if action == "users" and getattr(args, "users_command", None) is None:
        print("usage: swarmlens db users {list,add,remove,password,grant,revoke}", file=sys.stderr)
        return 2
    from swarmlens.commands.common import clickhouse_overrides

    overrides = clickhouse_overrides(args)
    cfg = config_module.load({**overrides,
                              "SWARMLENS_CLICKHOUSE_URL": getattr(args, "clickhouse_url", None) or args.url
                              or overrides["SWARMLENS_CLICKHOUSE_URL"],
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
            if action == "check":
                return _check(client, cfg, args.repair)
            if action == "users":
                return _users(client, args)
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


def _new_password(args) -> tuple[str, bool]:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise ValueError("no password on standard input")
        return password, False
    import secrets

    return secrets.token_urlsafe(24), True


def _users(client, args) -> int:
    what = args.users_command
    try:
        if what == "list":
            rows = dbusers.list_users(client)
            width = max([len(n) for n, _ in rows] + [4])
            print(f"{'user':<{width}}  roles")
            for name, roles in rows:
                print(f"{name:<{width}}  {', '.join(roles) or '(none)'}")
        elif what == "add":
            password, generated = _new_password(args)
            dbusers.create_user(client, args.name, password, args.role)
            print(f"created {args.name} ({', '.join(args.role)})")
            if generated:
                print(f"password: {password}")
        elif what == "remove":
            dbusers.drop_user(client, args.name)
            print(f"removed {args.name}")
        elif what == "password":
            password, generated = _new_password(args)
            dbusers.set_password(client, args.name, password)
            print(f"new password for {args.name}" + (f": {password}" if generated else " set"))
        else:
            dbusers.grant(client, args.name, [args.role], revoke=what == "revoke")
            print(f"{what}ed {args.role} {'to' if what == 'grant' else 'from'} {args.name}")
    except ValueError as exc:
        print(f"swarmlens db users {what}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the server's answer (clickhouse-connect's DatabaseError)
        from swarmlens.store.client import StoreError, raise_as_store_error

        try:
            raise_as_store_error(exc)
        except StoreError as err:
            print(f"swarmlens db users {what}: {str(err).strip().splitlines()[0][:300]}", file=sys.stderr)
            return 1
    return 0


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


def _check(client, cfg, fix: bool) -> int:
    import contextlib
    import os

    from swarmlens.ingest.state import inserts_paused
    from swarmlens.store import health
    from swarmlens.store.check import check

    started = time.monotonic()
    say = lambda line: print(line, flush=True)  # noqa: E731
    databases = [cfg.SWARMLENS_OTEL_DATABASE, cfg.SWARMLENS_DATABASE]
    run = health.runner_for(client)
    print(f"checking every part of every table at {cfg.SWARMLENS_CLICKHOUSE_URL} (CHECK TABLE)", flush=True)
    damaged = health.full_check(run, databases, progress=say)
    for f in damaged:
        print(f"  DAMAGED {f.line()}: {f.detail[:300]}", flush=True)
    if damaged and fix:
        for f in damaged:
            health.detach(run, f)
            print(f"  set aside {f.table} part {f.part} (its files are in the table's detached/ folder)", flush=True)
        left_damaged = health.full_check(run, databases)
    else:
        left_damaged = damaged
    if left_damaged:
        # The rollups cannot be compared while a part cannot be read.
        print(health.verdict(left_damaged) + f" ({time.monotonic() - started:.1f} s)")
        return 1
    print(f"comparing every rollup with its detail table at {cfg.SWARMLENS_CLICKHOUSE_URL}"
          + (" and repairing what differs" if fix else ""), flush=True)
    # Spans inserted meanwhile would make both sides differ for a moment: the local receiver (if
    # any) holds its inserts back, and keeps acknowledging into its log.
    ingest_dir = os.path.join(cfg.SWARMLENS_DATA_DIR, "ingest")
    quiet = inserts_paused(ingest_dir) if os.path.isdir(ingest_dir) else contextlib.nullcontext()
    try:
        with quiet:
            findings = check(client, cfg, fix=fix, progress=say)
    except TimeoutError as exc:
        print(f"swarmlens db check: {exc}", file=sys.stderr)
        return 1
    for f in findings:
        what = "repaired" if f.repaired else ("still differs after repair (rows arriving?)" if fix else "differs")
        print(f"  {f.table} partition {f.partition}: {f.rollup_keys} key(s) held, {f.detail_keys} from the details; "
              f"{what}", flush=True)
    left = [f for f in findings if not f.repaired]
    took = f"{time.monotonic() - started:.1f} s"
    set_aside = f"; {len(damaged)} damaged part(s) set aside, their rows lost unless restored" if damaged else ""
    if not findings:
        print(f"ok: no damaged part, every rollup equals its details{set_aside} ({took})")
    elif not left:
        print(f"ok: no damaged part; repaired {len(findings)} rollup partition(s), every rollup now equals its "
              f"details{set_aside} ({took})")
    else:
        print(f"DIFFERS: {len(left)} rollup partition(s) differ from their details" +
              ("" if fix else f"; run `{health.REPAIR_COMMAND}`") + f" ({took})")
    return 0 if not left else 1
