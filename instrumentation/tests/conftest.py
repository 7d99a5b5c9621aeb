"""Fixtures of the instrumentation tests: real Swarm, real openai client, the scripted LLM over
real HTTP, and an in-memory exporter that is instrumented, yielded, uninstrumented.

Self-contained: these tests run in an environment that holds the instrumentation distribution and
its test requirements alone (test-requirements.txt, noxfile.py), so nothing here imports swarmlens;
the scripted LLM runs as a process of its own, from its file path (support_llm)."""

from __future__ import annotations

import os
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, os.path.dirname(__file__))

from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor  # noqa: E402
from opentelemetry.instrumentation.openai_swarm.utils import SETTINGS  # noqa: E402
from support_llm import ScriptedLLM  # noqa: E402

try:  # an environment of the test matrix may hold the Agents SDK (openai>=2) and no Swarm
    import support_scenario as sc  # noqa: E402
except ImportError:
    sc = None
    # the Swarm tests need Swarm; the Agents SDK's and the pure helpers' run
    collect_ignore_glob = ["test_swarm_auto.py", "test_swarm_semconv.py", "test_swarm_spans.py",
                           "test_swarm_streaming.py", "test_swarm_coexistence.py"]


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch):
    for s in SETTINGS:
        monkeypatch.delenv(s.env, raising=False)


@pytest.fixture(scope="session")
def llm():
    if sc is None:
        pytest.skip("openai-swarm is not installed")
    with ScriptedLLM(sc.SCRIPT) as server:
        yield server


@pytest.fixture(scope="session")
def llm_no_usage():
    if sc is None:
        pytest.skip("openai-swarm is not installed")
    with ScriptedLLM(sc.SCRIPT, usage=False) as server:
        yield server


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter):
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


@pytest.fixture
def instrument(provider):
    """instrument(**options) with our provider; uninstrumented after the test."""
    inst = SwarmInstrumentor()

    def _instrument(**options):
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
        inst.instrument(tracer_provider=provider, **options)
        return inst

    yield _instrument
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


@pytest.fixture
def instrumented(instrument):
    return instrument()


@pytest.fixture
def swarm_client(llm):
    return sc.make_swarm(llm)
