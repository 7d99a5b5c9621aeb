"""`swarmlens notify ...`: where quota alerts and monthly reports go, and what was sent.

    swarmlens notify channels
    swarmlens notify set NAME (--webhook URL [--secret S] | --email ADDRESSES) [--plan PLAN]
                             [--no-alerts] [--reports]
    swarmlens notify delete NAME
    swarmlens notify test NAME    (a test message, to check the address, URL or signature)
    swarmlens notify log [--limit N]
    swarmlens notify check        (one check now: alerts due, reports due)
    swarmlens notify send-monthly --month YYYY-MM [--user U] [--to ADDRESSES] [--dry-run] [--out DIR]
    swarmlens notify run          (check every SWARMLENS_NOTIFY_INTERVAL seconds; `swarmlens up` runs it)

A channel without --plan is for every plan. In --email, the address `user` means the user's own
address (for their alerts and their monthly report). A webhook's signing secret is generated when
not given and printed once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("channels", help="the alert channels")
    p = sub.add_parser("set", help="create or change a channel")
    p.add_argument("name")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", metavar="URL", help="POST signed JSON to this URL")
    where.add_argument("--email", metavar="ADDRESSES", help="comma-separated addresses; 'user' = the user's own")
    p.add_argument("--plan", default="", help="only users of this plan (default: every plan)")
    p.add_argument("--secret", default=None, help="webhook signing secret (default: generated, or the current one)")
    p.add_argument("--no-alerts", action="store_true", help="do not send quota alerts here")
    p.add_argument("--reports", action="store_true", help="send the monthly reports here")
    p = sub.add_parser("delete", help="delete a channel")
    p.add_argument("name")
    p = sub.add_parser("test", help="send a test message to a channel now (recorded nowhere, sent every time)")
    p.add_argument("name")
    p = sub.add_parser("log", help="the latest notifications and their delivery")
    p.add_argument("--limit", type=int, default=50)
    sub.add_parser("check", help="send what is due now, once")
    p = sub.add_parser("send-monthly", help="send or preview a month's reports now",
                       description="A month's reports (each user's PDF and the ops summary) on demand. Without --to, "
                                   "to the channels that take reports, whatever is not sent yet (recorded, so the "
                                   "schedule never sends it again); with --to, to those addresses only, unrecorded.")
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="the month (a past month, or this one to preview)")
    p.add_argument("--user", action="append", metavar="USER", help="only this user's report (repeatable; no summary)")
    p.add_argument("--to", default="", metavar="ADDRESSES",
                   help="comma-separated e-mail addresses instead of the channels; 'user' = each user's own")
    p.add_argument("--dry-run", action="store_true", help="send nothing: list what would be sent where")
    p.add_argument("--out", default="", metavar="DIR", help="send nothing: write each e-mail (.eml) and webhook body "
                                                            "(.json) into DIR")
    sub.add_parser("run", help="send what is due, every SWARMLENS_NOTIFY_INTERVAL seconds, until stopped")


def run(args) -> int:
    from swarmlens.cli import run_store_command
    from swarmlens.notify import channels as ch

    def body(client, cfg):
        a = args.action
        if a == "channels":
            rows = ch.list_channels(client, cfg)
            print(f"{'name':<20} {'plan':<12} {'kind':<8} {'sends':<15} target")
            for c in rows:
                sends = "+".join(x for x, on in (("alerts", c.alerts), ("reports", c.reports)) if on)
                print(f"{c.name:<20} {c.plan or '(every)':<12} {c.kind:<8} {sends:<15} {c.shown_target()}")
            print(f"{len(rows)} channel{'' if len(rows) == 1 else 's'}")
        elif a == "set":
            existing = ch.get_channel(client, cfg, args.name)
            c = ch.set_channel(client, cfg, args.name, kind="webhook" if args.webhook else "email",
                               target=args.webhook or args.email, plan=args.plan, secret=args.secret,
                               alerts=not args.no_alerts, reports=args.reports)
            print(f"channel {c.name} saved: {c.kind} to {c.shown_target()} for "
                  f"{'plan ' + c.plan if c.plan else 'every plan'}")
            if c.kind == "webhook" and not args.secret and not (existing and existing.secret == c.secret):
                print(f"signing secret (shown only now): {c.secret}")
        elif a == "test":
            import uuid

            from swarmlens.notify.channels import Sender, test_message

            c = ch.get_channel(client, cfg, args.name)
            if c is None:
                raise ch.InvalidInput(f"no channel {args.name[:60]!r} (see `swarmlens notify channels`)")
            outcome = Sender(cfg).deliver(c, test_message(c), f"test-{uuid.uuid4().hex}")
            print(f"test message to {c.name} ({outcome.target}): {outcome.status} after {outcome.attempts} "
                  f"attempt(s), {outcome.detail}")
            return 0 if outcome.status == "sent" else 1
        elif a == "delete":
            c = ch.delete_channel(client, cfg, args.name)
            print(f"channel {c.name} deleted")
        elif a == "log":
            from swarmlens.notify import claims

            rows = claims.recent(client, cfg, max(1, min(args.limit, 10_000)))
            print(f"{'claimed at (UTC)':<20} {'user':<24} {'month':<8} {'level':<8} {'channel':<16} {'status':<8} detail")
            for r in rows:
                status = r["status"] or "no delivery recorded"
                print(f"{r['claimed_at']:%Y-%m-%d %H:%M:%S}  {r['user_id'] or '(ops)':<24} {r['month']:%Y-%m}  "
                      f"{r['level']:<8} {r['channel']:<16} {status:<8} {r['detail']}")
            print(f"{len(rows)} notification{'' if len(rows) == 1 else 's'}")
        elif a == "check":
            from swarmlens.notify.scheduler import Scheduler

            done = Scheduler(cfg, client, say=lambda line: print(line, flush=True)).tick()
            print(f"{len(done)} notification{'' if len(done) == 1 else 's'} sent or attempted")
        elif a == "send-monthly":
            from datetime import datetime, timezone

            from swarmlens.notify.channels import Sender
            from swarmlens.notify.scheduled import send_monthly
            from swarmlens.reports import common as rc

            try:
                month = rc.month_period(args.month)
                done = send_monthly(client, cfg, Sender(cfg), month, datetime.now(timezone.utc), to=args.to,
                                    users=args.user, dry_run=args.dry_run, out_dir=args.out,
                                    say=lambda line: print(line, flush=True))
            except ValueError as exc:
                raise ch.InvalidInput(str(exc)) from None
            failed = sum(d["status"] == "failed" for d in done)
            verb = "previewed" if (args.dry_run or args.out) else "sent or attempted"
            print(f"{len(done)} message{'' if len(done) == 1 else 's'} {verb}" + (f", {failed} failed" if failed else "")
                  + (f"; files in {args.out}" if args.out else ""))
            return 1 if failed else 0
        elif a == "run":
            return _run_forever(client, cfg)
        return 0

    return run_store_command("notify", args, body, usage="channels, set, delete, test, log, check, send-monthly or run")


def _run_forever(client, cfg) -> int:
    from swarmlens.notify.scheduler import Scheduler

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: stop.set())
    print(f"notifier: checking quotas and the report schedule every {cfg['SWARMLENS_NOTIFY_INTERVAL']:g} s",
          flush=True)
    scheduler = Scheduler(cfg, client, say=lambda line: print(f"notifier: {line}", flush=True))
    try:
        scheduler.run(stop)
    finally:
        if scheduler._client is not client:  # a client of its own, after a lost connection
            scheduler.close()
    print("notifier: stopped", flush=True)
    return 0


def start_in_stack(stack) -> None:
    """Starts ``swarmlens notify run`` as a child of `swarmlens up` (stopped before the reporter)."""
    import sys

    child = stack._child("notifier", [sys.executable, "-m", "swarmlens.cli", "notify", "run"],
                         stack._env_as("reporter"), grace=20)
    stack.say(f"  notifier     quota alerts and monthly reports, checked every {stack.cfg.SWARMLENS_NOTIFY_INTERVAL:g} s "
              f"(channels: `swarmlens notify set` or /admin/quotas; log {child.log_path})")
