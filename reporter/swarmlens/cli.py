"""The `swarmlens` command.

Each subcommand lives in the module of its area; this file only builds the argument parser
and imports the area lazily, so `swarmlens --help` stays fast and a missing extra only
affects the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from swarmlens import __version__

# (subcommand, module, one-line help). Each module provides add_arguments(parser) and run(args) -> int.
COMMANDS: list[tuple[str, str, str]] = [
    ("clickhouse", "swarmlens.embedded.command", "serve the embedded ClickHouse (chDB) over the ClickHouse HTTP interface"),
    ("db", "swarmlens.store.command", "database schema: migrate, status"),
    ("llm-server", "swarmlens.scripted_llm.command", "serve the scripted OpenAI-compatible LLM used by tests and the demo"),
    ("ingest", "swarmlens.ingest.command", "receive OTLP traces and insert them into ClickHouse, crash-safe (part of up)"),
    ("up", "swarmlens.stack", "run the whole stack on this machine: embedded ClickHouse, the crash-safe OTLP receiver, the reporter"),
    ("backup", "swarmlens.backup_command", "a consistent backup of the running stack: every table, the log, the secrets"),
    ("restore", "swarmlens.restore_command", "a backup back into a stopped data directory, each table checked"),
    ("status", "swarmlens.status_command", "what `swarmlens up` runs on this data directory, and what is behind"),
    ("demo", "swarmlens.demo.command", "run demo Swarm agents against the scripted LLM, sending spans over OTLP"),
    ("demo-agents", "swarmlens.demo.agents_sdk_app", "run the demo's OpenAI Agents SDK app against the scripted LLM, sending spans over OTLP"),
    ("users", "swarmlens.users_command", "ops accounts, end users and their plans, API tokens"),
    ("plans", "swarmlens.plans_command", "plans and their monthly token quotas"),
    ("prices", "swarmlens.prices_command", "model prices, USD per 1M input and output tokens"),
    ("notify", "swarmlens.notify.command", "quota alerts and monthly reports by webhook and e-mail: channels, log"),
]

# Commands that talk to ClickHouse as a client: each takes --clickhouse-url/-user/-password.
CLICKHOUSE_COMMANDS = ("db", "users", "plans", "prices", "notify")


def add_clickhouse_options(parser: argparse.ArgumentParser) -> None:
    """--clickhouse-url/-user/-password on a command and on each of its actions, so they may come
    before or after the action. Defaults are left out, so an action's parser never overwrites what
    was given before it."""
    group = parser.add_argument_group("ClickHouse")
    group.add_argument("--clickhouse-url", metavar="URL", default=argparse.SUPPRESS,
                       help="ClickHouse HTTP interface, e.g. http://127.0.0.1:8123 (default: SWARMLENS_CLICKHOUSE_URL)")
    group.add_argument("--clickhouse-user", metavar="USER", default=argparse.SUPPRESS,
                       help="ClickHouse user (default: SWARMLENS_CLICKHOUSE_USER)")
    group.add_argument("--clickhouse-password", metavar="PASSWORD", default=argparse.SUPPRESS,
                       help="ClickHouse password (default: SWARMLENS_CLICKHOUSE_PASSWORD, or the one "
                            "`swarmlens up` keeps in the data directory)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_clickhouse_options(sub)


def clickhouse_overrides(args) -> dict:
    """The config overrides given by --clickhouse-url/-user/-password (None where not given). With
    no URL given anywhere, a `swarmlens up` running on the data directory names its own endpoint
    (which may listen elsewhere than the default port)."""
    url = getattr(args, "clickhouse_url", None)
    if not url and not os.environ.get("SWARMLENS_CLICKHOUSE_URL"):
        url = _running_stack_url()
    return {"SWARMLENS_CLICKHOUSE_URL": url,
            "SWARMLENS_CLICKHOUSE_USER": getattr(args, "clickhouse_user", None),
            "SWARMLENS_CLICKHOUSE_PASSWORD": getattr(args, "clickhouse_password", None)}


def _running_stack_url() -> str | None:
    """The ClickHouse URL of the `swarmlens up` running on SWARMLENS_DATA_DIR, if one runs."""
    from swarmlens import config
    from swarmlens.stack import running_clickhouse_url

    return running_clickhouse_url(os.path.abspath(os.path.expanduser(config.load().SWARMLENS_DATA_DIR)))


def run_store_command(prog: str, args, body, *, usage: str, errors: tuple = ()) -> int:
    """Runs `body(client, config)` of a command that works on the store: checks an action was
    given, connects, reports a user error or a store error on one line, and closes the client."""
    from swarmlens import accounts, config
    from swarmlens.store.client import StoreError, connect

    if not getattr(args, "action", None):
        print(f"swarmlens {prog}: give an action: {usage}; see --help", file=sys.stderr)
        return 2
    cfg = config.load(clickhouse_overrides(args))
    try:
        client = connect(cfg)
    except StoreError as exc:
        print(f"swarmlens {prog}: {exc}", file=sys.stderr)
        return 1
    try:
        return int(body(client, cfg) or 0)
    except (accounts.InvalidInput, *errors) as exc:
        print(f"swarmlens {prog}: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"swarmlens {prog}: {exc} (has `swarmlens db migrate` run?)", file=sys.stderr)
        return 1
    finally:
        client.close()


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``chosen``'s module is imported for its arguments (all of them when None),
    so that `swarmlens status` does not load the demo's OpenAI client, which on a loaded machine
    took longer than status may."""
    parser = argparse.ArgumentParser(prog="swarmlens", description="Usage history and reporting for OpenAI Swarm apps.")
    parser.add_argument("--version", action="version", version=f"swarmlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if chosen is not None and name != chosen:
            continue
        try:
            importlib.import_module(module).add_arguments(p)
            if name in CLICKHOUSE_COMMANDS:
                add_clickhouse_options(p)
        except ImportError as exc:  # a missing extra: the command explains itself when run
            p.set_defaults(_import_error=str(exc))
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    # clickhouse-connect logs a failed request with its traceback before raising; the commands
    # report the error themselves, on one line.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    given = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in given if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in {name for name, _, _ in COMMANDS} else "")
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_import_error", None):
        print(f"swarmlens {args.command}: {args._import_error} (install the service side: pip install swarmlens)",
              file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
