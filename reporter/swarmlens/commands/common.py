"""What several commands share: the ClickHouse client options, finding the running stack's endpoint,
running an action against the store with one-line errors, and the demo extra's check."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

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
    from swarmlens.stack.state import running_clickhouse_url

    return running_clickhouse_url(os.path.abspath(os.path.expanduser(config.load().SWARMLENS_DATA_DIR)))


def run_store_command(prog: str, args, body, *, usage: str, errors: tuple = ()) -> int:
    """Runs `body(client, config)` of a command that works on the store: checks an action was
    given, connects, reports a user error or a store error on one line, and closes the client."""
    from swarmlens import config
    from swarmlens.errors import InvalidInput
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
    except (InvalidInput, *errors) as exc:
        print(f"swarmlens {prog}: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"swarmlens {prog}: {exc} (has `swarmlens db migrate` run?)", file=sys.stderr)
        return 1
    finally:
        client.close()


# What `swarmlens demo` and `up --demo` import beyond a server's needs (the `demo` extra).
DEMO_MODULES = ("swarm", "openai", "opentelemetry.instrumentation.openai_swarm")


def demo_extra_missing(command: str) -> str | None:
    """One line telling how to install the demo when a module of it is missing, else None."""
    for name in DEMO_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return (f"swarmlens {command}: the demo is not installed ({name} is missing): "
                    f"pip install 'swarmlens[demo]'")
    return None
