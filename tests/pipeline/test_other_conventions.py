"""Plain OpenAI SDK apps instrumented by other packages, through `swarmlens ingest` into ClickHouse:
OpenInference's `llm.*` / `user.id` are mapped onto the GenAI conventions, OpenLLMetry's spans are
read as they are, a call written by two instrumentations counts once, and a call with a user is a
task on that user's history. The real instrumentation packages, the real openai client and the
scripted LLM over real HTTP."""

from __future__ import annotations

import contextlib
import uuid

import openai
import pytest

from swarmlens import config as config_mod
from swarmlens.scripted_llm import ScriptedLLMServer
from support_polling import wait_until

openinference = pytest.importorskip("openinference.instrumentation.openai")
openllmetry = pytest.importorskip("opentelemetry.instrumentation.openai")

MODEL = "gpt-4o-mini"
SCRIPT = {"model": MODEL, "agents": {"plain": {"match": "[plain]", "replies": [
    {"content": "Hello there.", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}]}}}


@pytest.fixture(scope="module")
def migrated(fresh_databases):
    from swarmlens.store.migrate import migrate_from_config

    cfg = config_mod.load(fresh_databases)
    migrate_from_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def ingest(migrated, tmp_path_factory):
    from swarmlens.ingest.server import Ingest

    ing = Ingest(migrated, str(tmp_path_factory.mktemp("ingest")), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    yield ing
    ing.stop()


@pytest.fixture(scope="module")
def llm():
    with ScriptedLLMServer(SCRIPT) as server:
        yield server


@pytest.fixture()
def store(migrated):
    from swarmlens.store.client import connect

    c = connect(migrated)
    yield c
    c.close()


@contextlib.contextmanager
def _app(ingest, *instrumentors, service):
    """A tracer provider exporting over OTLP/HTTP to the ingest, with the given instrumentations on it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ingest.http_port}/v1/traces")))
    started = []
    try:
        for make, kwargs in instrumentors:
            inst = make()
            inst.instrument(tracer_provider=tp, **kwargs)
            started.append(inst)
        yield tp
    finally:
        for inst in reversed(started):
            inst.uninstrument()
        tp.shutdown()


def _ask(llm, n: int = 2):
    client = openai.OpenAI(base_url=llm.url, api_key="test", max_retries=0)
    for _ in range(n):
        client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "[plain]"},
                                                              {"role": "user", "content": "hi"}])


def _figures(store, cfg, service):
    """(originals, copies, input, output, users) of the service's chat calls, and its tasks per user."""
    calls = store.query(
        "SELECT countIf(duplicate_of = ''), countIf(duplicate_of != ''), sumIf(input_tokens, duplicate_of = ''), "
        "sumIf(output_tokens, duplicate_of = ''), groupUniqArrayIf(user_id, duplicate_of = '') "
        "FROM {db:Identifier}.chat_calls FINAL WHERE service_name = {s:String}",
        parameters={"db": cfg.SWARMLENS_DATABASE, "s": service}).result_rows[0]
    tasks = store.query(
        "SELECT user_id, count(), sum(turns), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.tasks FINAL "
        "WHERE service_name = {s:String} GROUP BY user_id",
        parameters={"db": cfg.SWARMLENS_DATABASE, "s": service}).result_rows
    return tuple(calls[:4]) + (sorted(calls[4]),), tasks


def _wait(store, cfg, service, calls: int):
    return wait_until(lambda: (lambda f: f if f[0][0] + f[0][1] >= calls else None)(_figures(store, cfg, service)),
                      30, what=f"{calls} chat calls of {service}")


def test_openinference_tokens_and_user_are_mapped_and_the_call_is_the_users_task(ingest, llm, store, migrated):
    from openinference.instrumentation import using_user
    from openinference.instrumentation.openai import OpenAIInstrumentor

    service, user = f"oi-{uuid.uuid4().hex[:6]}", f"oi-user-{uuid.uuid4().hex[:6]}"
    # openinference-instrumentation-openai declares openai>=2.8; the calls it wraps are the same in 1.x
    with _app(ingest, (OpenAIInstrumentor, {"skip_dep_check": True}), service=service):
        with using_user(user):
            _ask(llm)
    calls, tasks = _wait(store, migrated, service, 2)
    assert calls == (2, 0, 24, 6, [user])
    assert tasks == [(user, 2, 2, 24, 6)]


def test_openllmetry_and_openinference_on_one_call_count_it_once(ingest, llm, store, migrated):
    """Both wrap the same request (OpenInference's span inside OpenLLMetry's, which has the response id and
    OpenInference none): one call, one task, the user from swarm_user() through the identity processor."""
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user

    service, user = f"ll-{uuid.uuid4().hex[:6]}", f"ll-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (SwarmInstrumentor, {}), (OpenLLMetry, {}), (OpenInference, {"skip_dep_check": True}),
              service=service):
        with swarm_user(user):
            _ask(llm)
    calls, tasks = _wait(store, migrated, service, 4)
    assert calls == (2, 2, 24, 6, [user])
    assert tasks == [(user, 2, 2, 24, 6)]


def test_openllmetry_alone_is_read_as_it_is(ingest, llm, store, migrated):
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user

    service, user = f"l1-{uuid.uuid4().hex[:6]}", f"l1-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (SwarmInstrumentor, {}), (OpenLLMetry, {}), service=service):
        with swarm_user(user):
            _ask(llm, 3)
    calls, tasks = _wait(store, migrated, service, 3)
    assert calls == (3, 0, 36, 9, [user])
    assert tasks == [(user, 3, 3, 36, 9)]
