"""`swarmlens plans ...`: plans and their monthly token quotas.

    swarmlens plans list
    swarmlens plans set PLAN --quota TOKENS [--warn-at PERCENT] [--name NAME]

A quota counts task tokens (input + output) per calendar month (UTC); 0 means unlimited. Users are
put on a plan with `swarmlens users assign USER PLAN` or on /admin/plans.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="plans with quota and number of users")
    p = sub.add_parser("set", help="create or change a plan")
    p.add_argument("plan")
    p.add_argument("--quota", required=True, help="task tokens per month; 0 = unlimited")
    p.add_argument("--warn-at", default="80", help="percent of the quota at which to warn (default 80)")
    p.add_argument("--name", default="", help="display name")


def run(args) -> int:
    from swarmlens import accounts
    from swarmlens.cli import run_store_command

    def body(client, cfg):
        if args.action == "set":
            row = accounts.set_plan(client, cfg, args.plan, quota=args.quota, warn_at_percent=args.warn_at,
                                    display_name=args.name)
            print(f"plan {row['plan']} saved: {row['monthly_token_quota']:,} tokens a month, "
                  f"warning at {row['warn_at_percent']}%")
            return 0
        rows = accounts.list_plans(client, cfg)
        for r in rows:
            quota = f"{r['monthly_token_quota']:,}" if r["monthly_token_quota"] else "unlimited"
            print(f"{r['plan']:<16} {r['display_name']:<20} {quota:>14}  warn {r['warn_at_percent']}%  "
                  f"{r['users']} users")
        print(f"{len(rows)} plans")
        return 0

    return run_store_command("plans", args, body, usage="list or set")
