"""The `swarmlens` command: builds the argument parser and runs the chosen subcommand.

Each subcommand is a module of this package providing ``add_arguments(parser)`` and ``run(args)``.
Only the chosen subcommand's module is imported, so that `swarmlens --help` and `swarmlens status`
stay fast and light, and `up`'s children (`clickhouse`, `ingest`) load neither Flask nor the demo.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from swarmlens import __version__

# (subcommand, module, one-line help).
COMMANDS: list[tuple[str, str, str]] = [
    ("clickhouse", "swarmlens.commands.clickhouse",
     "serve the embedded ClickHouse (chDB) over the ClickHouse HTTP interface"),
    ("db", "swarmlens.commands.db",
     "the database: migrate, status (of the migrations), check [--repair], users (ClickHouse users and roles)"),
    ("llm-server", "swarmlens.commands.llm_server",
     "serve the scripted OpenAI-compatible LLM used by tests and the demo"),
    ("ingest", "swarmlens.commands.ingest",
     "receive OTLP traces and insert them into ClickHouse, crash-safe (part of up)"),
    ("up", "swarmlens.commands.up",
     "run the whole stack on this machine: embedded ClickHouse, migrations, the crash-safe OTLP receiver "
     "(or rotel with SWARMLENS_COLLECTOR=rotel), the reporter, the notifier; --demo adds demo traffic"),
    ("backup", "swarmlens.commands.backup",
     "a consistent backup of the running stack: every table, the log, the secrets"),
    ("restore", "swarmlens.commands.restore",
     "a backup back into a stopped data directory, each table checked"),
    ("status", "swarmlens.commands.status",
     "what `swarmlens up` runs on this data directory, and what is behind"),
    ("demo", "swarmlens.commands.demo",
     "run demo Swarm agents against the scripted LLM, sending spans over OTLP (needs swarmlens[demo])"),
    ("demo-agents", "swarmlens.commands.demo_agents",
     "run the demo's OpenAI Agents SDK app against the scripted LLM, sending spans over OTLP "
     "(needs swarmlens[demo,agents])"),
    ("users", "swarmlens.commands.users",
     "ops accounts, end users and their plans, API tokens: list, add, assign, add-ops, set-password, disable-ops, "
     "enable-ops, token"),
    ("plans", "swarmlens.commands.plans", "plans and their monthly token quotas: list, set, delete"),
    ("prices", "swarmlens.commands.prices", "model prices, USD per 1M input and output tokens: list, set"),
    ("notify", "swarmlens.commands.notify",
     "quota alerts and monthly reports by webhook and e-mail: channels, set, delete, test, log, check, "
     "send-monthly, run"),
]


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
            from swarmlens.commands.common import CLICKHOUSE_COMMANDS, add_clickhouse_options

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
        print(f"swarmlens {args.command}: {args._import_error} (is swarmlens installed with its dependencies?)",
              file=sys.stderr)
        return 2
    from swarmlens.errors import SwarmlensError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except SwarmlensError as exc:  # an error raised on purpose: its message, on one line
        print(f"swarmlens {args.command}: {exc}", file=sys.stderr)
        return 1


