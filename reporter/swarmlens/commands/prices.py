"""`swarmlens prices ...`: the model price table, USD per 1M input and output tokens.

    swarmlens prices list
    swarmlens prices set MODEL --input USD --output USD

Prices apply at query time: a change shows at once in every report, for past usage too.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="the price table")
    p = sub.add_parser("set", help="set a model's price")
    p.add_argument("model", help="the model name as the app requests it (gen_ai.request.model)")
    p.add_argument("--input", required=True, help="USD per 1M input tokens")
    p.add_argument("--output", required=True, help="USD per 1M output tokens")


def run(args) -> int:
    from swarmlens import accounts
    from swarmlens.commands.common import run_store_command

    def body(client, cfg):
        if args.action == "set":
            row = accounts.set_price(client, cfg, args.model, usd_per_1m_input=args.input,
                                     usd_per_1m_output=args.output)
            print(f"{row['model']}: ${row['usd_per_1m_input']} / 1M input, ${row['usd_per_1m_output']} / 1M output")
            return 0
        rows = accounts.list_prices(client, cfg)
        print(f"{'model':<32} {'input':>10} {'output':>10}   (USD per 1M tokens)")
        for r in rows:
            print(f"{r['model']:<32} {r['usd_per_1m_input']:>10.4f} {r['usd_per_1m_output']:>10.4f}")
        print(f"{len(rows)} model{'' if len(rows) == 1 else 's'} priced")
        return 0

    return run_store_command("prices", args, body, usage="list or set")
