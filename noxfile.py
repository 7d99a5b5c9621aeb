"""The instrumentation's test matrix: its tests (instrumentation/tests) in environments one venv cannot
hold together. Swarm needs openai 1.x (its dependency instructor pins openai<2) and current Agents SDK
releases need openai 2 or later; the supported OpenTelemetry range starts at 1.38.

    .venv/bin/nox                 # every environment (about 3 minutes with a warm pip cache)
    .venv/bin/nox -s agents_newest

Each session installs the instrumentation distribution (./instrumentation) with its test requirements
(instrumentation/test-requirements.txt) and the packages of its environment, as an app would, and
nothing of the service: every session first checks that swarmlens, Flask and chDB do not import. The
tests start the scripted LLM server from its file path in reporter/ (standard library only). The
versions at both ends are the ones docs/instrumentation.md states as supported; `.ci/run` runs this
after the main suite.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

TESTS = "instrumentation/tests"
TEST_REQUIREMENTS = "instrumentation/test-requirements.txt"
# Run in the directory pytest runs in, so that the checkout's folders count as importable too.
NOTHING_OF_THE_SERVICE = """
import importlib
for name in ("swarmlens", "flask", "chdb"):
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} imports: this environment must hold the instrumentation and its tests alone")
"""
OTEL_OLDEST = ["opentelemetry-api==1.38.0", "opentelemetry-sdk==1.38.0",
               "opentelemetry-exporter-otlp-proto-http==1.38.0", "opentelemetry-instrumentation==0.59b0",
               "opentelemetry-semantic-conventions==0.59b0"]
SWARM = ["openai-swarm==0.1.1", "openai<2"]
AGENTS_OLDEST = "openai-agents==0.3.3"
AGENTS_NEWEST = "openai-agents==0.25.0"


def _run(session: nox.Session, *packages: str, expect: str) -> None:
    session.install("-r", TEST_REQUIREMENTS, "./instrumentation", *packages)
    session.run("python", "-c", expect)  # the environment is the one this session means
    session.run("python", "-c", NOTHING_OF_THE_SERVICE)
    session.run("python", "-m", "pytest", TESTS, "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def swarm_otel_oldest(session: nox.Session) -> None:
    """Swarm with openai 1.x beside the oldest supported OpenTelemetry (1.38, semantic conventions 0.59b0)."""
    _run(session, *SWARM, *OTEL_OLDEST,
         expect="from importlib.metadata import version as v; assert v('opentelemetry-api') == '1.38.0'")


@nox.session
def swarm_otel_newest(session: nox.Session) -> None:
    """Swarm with openai 1.x beside the newest OpenTelemetry 1.x."""
    _run(session, *SWARM, "opentelemetry-api<2", "opentelemetry-sdk<2",
         expect="from importlib.metadata import version as v; print(v('opentelemetry-api'))")


@nox.session
def agents_newest(session: nox.Session) -> None:
    """The newest supported Agents SDK (task and turn spans) on the newest openai it allows (2 or later), without Swarm."""
    _run(session, AGENTS_NEWEST,
         expect="from importlib.metadata import version as v; assert int(v('openai').split('.')[0]) >= 2, v('openai')")


@nox.session
def agents_oldest(session: nox.Session) -> None:
    """The oldest supported Agents SDK, alone."""
    _run(session, AGENTS_OLDEST,
         expect="from importlib.metadata import version as v; assert v('openai-agents') == '0.3.3'")
