"""Serve the scripted LLM from a package or from a checkout without it.

    python -m swarmlens.scripted_llm --port 0 --script script.json
    python -I -S reporter/swarmlens/scripted_llm --port 0 --script script.json

The second form needs nothing but the standard library (no swarmlens, no site-packages): the
instrumentation's tests run it so in an environment that holds the instrumentation alone. Either
prints ``scripted LLM serving URL ...`` as its first line, serves until interrupted, and answers
``GET /_scripted/requests`` and ``POST /_scripted/reset`` for a test in another process.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys


def _server():
    if __package__:
        return importlib.import_module(".server", __package__)
    # Run by path: this directory becomes a package of its own name, so its relative imports work
    # and nothing of swarmlens is imported.
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("scripted_llm", os.path.join(here, "__init__.py"),
                                                  submodule_search_locations=[here])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    return importlib.import_module("scripted_llm.server")


def main(argv: list[str] | None = None) -> int:
    # The same options as `swarmlens llm-server` (swarmlens.commands.llm_server), which a checkout
    # without swarmlens cannot import.
    server = _server()
    parser = argparse.ArgumentParser(prog="scripted_llm", description="serve the scripted OpenAI-compatible LLM")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: 0)")
    parser.add_argument("--script", default=server.EXAMPLE_SCRIPT,
                        help="JSON script of agent replies (default: the bundled support-desk example)")
    parser.add_argument("--no-usage", action="store_true", help="act as a provider that never reports token usage")
    args = parser.parse_args(argv)
    return server.serve(args.script, host=args.host, port=args.port, usage=False if args.no_usage else None,
                        prog="scripted_llm")


if __name__ == "__main__":
    sys.exit(main())
