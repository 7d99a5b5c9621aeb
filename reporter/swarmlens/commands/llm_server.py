"""`swarmlens llm-server`: serve the scripted OpenAI-compatible LLM (swarmlens.scripted_llm)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: 0)")
    parser.add_argument("--script", default=None,
                        help="JSON script of agent replies (default: the bundled support-desk example)")
    parser.add_argument("--no-usage", action="store_true", help="act as a provider that never reports token usage")


def run(args: argparse.Namespace) -> int:
    from swarmlens.scripted_llm.server import EXAMPLE_SCRIPT, serve

    return serve(args.script or EXAMPLE_SCRIPT, host=args.host, port=args.port,
                 usage=False if args.no_usage else None, prog="swarmlens llm-server")
