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


def _command():
    if __package__:
        return importlib.import_module(".command", __package__)
    # Run by path: this directory becomes a package of its own name, so its relative imports work
    # and nothing of swarmlens is imported.
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("scripted_llm", os.path.join(here, "__init__.py"),
                                                  submodule_search_locations=[here])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    return importlib.import_module("scripted_llm.command")


def main(argv: list[str] | None = None) -> int:
    command = _command()
    parser = argparse.ArgumentParser(prog="scripted_llm", description="serve the scripted OpenAI-compatible LLM")
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
