"""`swarmlens llm-server`: serve the scripted OpenAI-compatible LLM."""

from __future__ import annotations

import argparse
import os
import sys

import swarmlens.scripted_llm

EXAMPLE_SCRIPT = os.path.join(os.path.dirname(swarmlens.scripted_llm.__file__), "example_support.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: 0)")
    parser.add_argument("--script", default=EXAMPLE_SCRIPT,
                        help="JSON script of agent replies (default: the bundled support-desk example)")
    parser.add_argument("--no-usage", action="store_true", help="act as a provider that never reports token usage")


def run(args: argparse.Namespace) -> int:
    from swarmlens.scripted_llm.script import ScriptError
    from swarmlens.scripted_llm.server import ScriptedLLMServer

    try:
        server = ScriptedLLMServer(args.script, host=args.host, port=args.port,
                                   usage=False if args.no_usage else None).bind()
    except (ScriptError, OSError) as exc:
        print(f"swarmlens llm-server: {exc}", file=sys.stderr)
        return 2
    agents = ", ".join(server.script.data["agents"])
    print(f"scripted LLM serving {server.url} (agents: {agents}; usage: "
          f"{'on' if server.script.reports_usage else 'off'}); Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print("scripted LLM stopped", flush=True)
    return 0
