"""`swarmlens users ...`: ops accounts, end users and their plans, API tokens.

    swarmlens users list
    swarmlens users add USER_ID [--plan PLAN] [--name NAME] [--email EMAIL]
    swarmlens users assign USER_ID PLAN [--create]
    swarmlens users add-ops LOGIN [--password-stdin]        (prompts, or generates and prints one)
    swarmlens users set-password LOGIN [--password-stdin]
    swarmlens users disable-ops LOGIN | enable-ops LOGIN
    swarmlens users token create (--user USER_ID | --ops LOGIN) [--name LABEL] [--expires-days N]
    swarmlens users token revoke TOKEN_OR_HASH_PREFIX
    swarmlens users token list [--owner ID]

Settings (ClickHouse URL, database) come from the SWARMLENS_* environment, as for every command;
--clickhouse-url, --clickhouse-user and --clickhouse-password override them.
Tokens and generated passwords are printed once: only their hashes are stored.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from datetime import timedelta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="users with plan and this month's usage, ops accounts")
    p = sub.add_parser("add", help="add or update an end user")
    p.add_argument("user_id")
    p.add_argument("--plan", default=None)
    p.add_argument("--name", default=None, help="display name")
    p.add_argument("--email", default=None)
    p = sub.add_parser("assign", help="put a known user on a plan (--create: a new one too)")
    p.add_argument("user_id")
    p.add_argument("plan")
    p.add_argument("--create", action="store_true", help="create the user when swarmlens does not know it yet")
    for name, text in (("add-ops", "create an ops account"), ("set-password", "change an ops account's password")):
        p = sub.add_parser(name, help=text)
        p.add_argument("login")
        p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for name, text in (("disable-ops", "stop an ops account from signing in"), ("enable-ops", "allow it again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("login")
    t = sub.add_parser("token", help="API tokens: create, revoke, list")
    tsub = t.add_subparsers(dest="token_action", metavar="TOKEN_ACTION")
    p = tsub.add_parser("create", help="create a token (printed once)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="an end user's token: reads that user's history only")
    who.add_argument("--ops", help="an ops token (for this ops login): reads every user")
    p.add_argument("--name", default="", help="a label, e.g. the app that uses it")
    p.add_argument("--expires-days", type=int, default=0, help="0 = never expires")
    p = tsub.add_parser("revoke", help="revoke a token, given whole or by a hash prefix (8+ characters)")
    p.add_argument("token")
    p = tsub.add_parser("list", help="tokens (hashes only)")
    p.add_argument("--owner", default="")


def _password(args, prompt: str) -> tuple[str, bool]:
    """(password, generated)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if first != getpass.getpass("Again: "):
            raise SystemExit("swarmlens users: the passwords differ")
        return first, False
    return secrets.token_urlsafe(15), True


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def run(args) -> int:
    from swarmlens import accounts, auth
    from swarmlens.commands.common import run_store_command

    return run_store_command("users", args, lambda client, cfg: _run(args, cfg, client, accounts, auth),
                             usage="list, add, assign, add-ops, set-password, token ...", errors=(auth.AuthError,))


def _run(args, cfg, client, accounts, auth) -> int:
    from swarmlens.reports import common as rc

    a = args.action
    if a == "list":
        rows = rc.quota_rows(client, cfg, rc.this_month())
        print(f"{'user':<24} {'plan':<12} {'tokens':>12} {'quota':>12} {'used':>8}")
        for r in rows:
            used = f"{r['percent']}%" if r["percent"] is not None else "-"
            print(f"{r['user_id']:<24} {r['plan'] or '-':<12} {r['tokens'] or 0:>12,} {r['quota'] or 0:>12,} {used:>8}")
        ops = rc.q(client, cfg, "ops_list")
        print(f"\nops accounts: {', '.join(o['login'] + (' (disabled)' if o['disabled'] else '') for o in ops) or 'none'}")
        print(f"{_count(len(rows), 'user')}, {_count(len(ops), 'ops account')}")
    elif a == "add":
        row = accounts.upsert_user(client, cfg, args.user_id, plan=args.plan, display_name=args.name, email=args.email)
        print(f"user {row['user_id']} saved (plan {row['plan'] or 'none'})")
    elif a == "assign":
        if not args.create and not accounts.known_user(client, cfg, args.user_id):
            raise accounts.InvalidInput(f"no user {args.user_id!r}: it has no tasks and no configuration; check the "
                                        f"spelling, or add --create to create it")
        row = accounts.upsert_user(client, cfg, args.user_id, plan=args.plan)
        print(f"user {row['user_id']} is on plan {row['plan']}")
    elif a in ("add-ops", "set-password"):
        password, generated = _password(args, f"Password for {args.login}: ")
        auth.set_ops_password(client, cfg, args.login, password, create=a == "add-ops")
        if generated:
            print(f"password for {args.login}: {password}")
        print(f"ops account {args.login} {'created' if a == 'add-ops' else 'updated'}")
    elif a in ("disable-ops", "enable-ops"):
        auth.set_ops_disabled(client, cfg, args.login, a == "disable-ops")
        print(f"ops account {args.login} {'disabled' if a == 'disable-ops' else 'enabled'}")
    elif a == "token":
        ta = getattr(args, "token_action", None)
        if ta == "create":
            scope, owner = ("ops", args.ops) if args.ops else ("user", args.user)
            if scope == "user":
                accounts.check_name(owner, "a user id")
            if args.expires_days < 0:
                raise accounts.InvalidInput("--expires-days must be 0 (never) or more")
            token, digest = auth.create_token(client, cfg, scope=scope, owner=owner, name=args.name,
                                              expires_in=timedelta(days=args.expires_days) if args.expires_days else None)
            print(token)
            print(f"{scope} token for {owner} created (hash {digest[:12]}); it is shown only now", file=sys.stderr)
        elif ta == "revoke":
            t = auth.revoke_token(client, cfg, args.token)
            print(f"token {t['token_hash'][:12]} of {t['user_id']} revoked")
        elif ta == "list":
            rows = auth.list_tokens(client, cfg, args.owner)
            for t in rows:
                state = "revoked" if t["revoked"] else "active"
                print(f"{t['token_hash'][:12]}  {t['scope']:<4}  {t['user_id']:<20} {t['name']:<20} {state}")
            print(_count(len(rows), "token"))
        else:
            print("swarmlens users token: create, revoke or list", file=sys.stderr)
            return 2
    return 0
