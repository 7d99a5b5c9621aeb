"""`swarmlens plans ...`: plans and their monthly token quotas.

    swarmlens plans list
    swarmlens plans set PLAN --quota TOKENS [--warn-at PERCENT] [--name NAME]
    swarmlens plans delete PLAN          (refused while users are on it)

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
    p = sub.add_parser("delete", help="delete a plan nobody is on")
    p.add_argument("plan")


def run(args) -> int:
    from swarmlens import accounts
    from swarmlens.commands.common import run_store_command

    def body(client, cfg):
        if args.action == "set":
            row = accounts.set_plan(client, cfg, args.plan, quota=args.quota, warn_at_percent=args.warn_at,
                                    display_name=args.name)
            print(f"plan {row['plan']} saved: {row['monthly_token_quota']:,} tokens a month, "
                  f"warning at {row['warn_at_percent']}%")
            return 0
        if args.action == "delete":
            row = accounts.delete_plan(client, cfg, args.plan)
            print(f"plan {row['plan']} deleted")
            return 0
        rows = accounts.list_plans(client, cfg)
        print(f"{'plan':<16} {'name':<20} {'tokens/month':>14}  {'warn at':<9} users")
        for r in rows:
            quota = f"{r['monthly_token_quota']:,}" if r["monthly_token_quota"] else "unlimited"
            print(f"{r['plan']:<16} {r['display_name']:<20} {quota:>14}  {str(r['warn_at_percent']) + '%':<9} "
                  f"{r['users']}")
        print(f"{len(rows)} plan{'' if len(rows) == 1 else 's'}")
        return 0

    return run_store_command("plans", args, body, usage="list, set or delete")
