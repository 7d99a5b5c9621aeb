"""Plain OpenAI SDK apps instrumented by other packages, through `swarmlens ingest` into ClickHouse:
OpenInference's `llm.*` / `user.id` are mapped onto the GenAI conventions, OpenLLMetry's spans are
read as they are, a call written by two instrumentations counts once, and a call with a user is a
task on that user's history; a Swarm task beside another OpenAI instrumentation (OpenInference,
genai-openai, logfire, openai-v2) counts every call once, at every level. The real instrumentation
packages, the real openai client and the scripted LLM over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import subprocess
import sys
import uuid
from pathlib import Path

import openai
import pytest

from swarmlens.scripted_llm import ScriptedLLMServer
from swarmlens_testing.polling import wait_until

openinference = pytest.importorskip("openinference.instrumentation.openai")
openllmetry = pytest.importorskip("opentelemetry.instrumentation.openai")

MODEL = "gpt-4o-mini"
SCRIPT = {"model": MODEL, "agents": {"plain": {"match": "[plain]", "replies": [
    {"content": "Hello there.", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}]}}}


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


def _wait(store, cfg, service, calls: int, tasks: int):
    """The figures once the service's calls and tasks are all stored (a task's root may come in a later
    insert than its calls)."""
    return wait_until(lambda: (lambda f: f if f[0][0] + f[0][1] >= calls and sum(t[1] for t in f[1]) >= tasks
                               else None)(_figures(store, cfg, service)),
                      30, what=f"{calls} chat calls and {tasks} tasks of {service}")


def test_openinference_tokens_and_user_are_mapped_and_the_call_is_the_users_task(ingest, llm, store, migrated):
    from openinference.instrumentation import using_user
    from openinference.instrumentation.openai import OpenAIInstrumentor

    service, user = f"oi-{uuid.uuid4().hex[:6]}", f"oi-user-{uuid.uuid4().hex[:6]}"
    # openinference-instrumentation-openai declares openai>=2.8; the calls it wraps are the same in 1.x
    with _app(ingest, (OpenAIInstrumentor, {"skip_dep_check": True}), service=service):
        with using_user(user):
            _ask(llm)
    calls, tasks = _wait(store, migrated, service, 2, 2)
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
    calls, tasks = _wait(store, migrated, service, 4, 2)
    assert calls == (2, 2, 24, 6, [user])
    assert tasks == [(user, 2, 2, 24, 6)]


def test_openllmetry_alone_is_read_as_it_is(ingest, llm, store, migrated):
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user

    service, user = f"l1-{uuid.uuid4().hex[:6]}", f"l1-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (SwarmInstrumentor, {}), (OpenLLMetry, {}), service=service):
        with swarm_user(user):
            _ask(llm, 3)
    calls, tasks = _wait(store, migrated, service, 3, 3)
    assert calls == (3, 0, 36, 9, [user])
    assert tasks == [(user, 3, 3, 36, 9)]


def _user_page(migrated, tmp_path, user):
    from swarmlens import auth
    from swarmlens.app import create_app
    from swarmlens.store.client import connect

    cfg = dict(migrated, SWARMLENS_DATA_DIR=str(tmp_path / "data"))
    store = connect(cfg)
    login = f"ops-{uuid.uuid4().hex[:6]}"
    auth.set_ops_password(store, cfg, login, "a-long-password", create=True)
    token, _ = auth.create_token(store, cfg, scope="ops", owner=login, name="plain app")
    store.close()
    client = create_app(dict(cfg, TESTING=True)).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return client.get(f"/users/{user}", headers=headers), client.get(f"/api/v1/users/{user}/tasks", headers=headers)


def test_a_plain_openai_app_under_openai_v2_has_a_user_page(ingest, llm, store, migrated, tmp_path):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user

    service, user = f"v2-{uuid.uuid4().hex[:6]}", f"v2-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (SwarmInstrumentor, {}), (OpenAIV2, {}), service=service):
        with swarm_user(user):
            _ask(llm, 2)
    calls, tasks = _wait(store, migrated, service, 2, 2)
    assert calls == (2, 0, 24, 6, [user]) and tasks == [(user, 2, 2, 24, 6)]
    page, api = wait_until(lambda: (lambda p: p if p[1].status_code == 200 and len(p[1].get_json()["tasks"]) == 2
                                    else None)(_user_page(migrated, tmp_path, user)), 20, what="the user's tasks")
    assert page.status_code == 200 and user in page.get_data(as_text=True)
    assert sorted(t["total_tokens"] for t in api.get_json()["tasks"]) == [15, 15]


def test_the_agents_sdk_beside_openai_v2_counts_every_model_call_once(ingest, llm, store, migrated):
    """The issue's reproduction: the Agents SDK does not carry the context into its model calls, so
    openai-v2's chat spans are roots of traces of their own. Each is a copy of the Agents SDK's
    call (no response id on the SDK's chat-completions spans: matched by model, tokens and time)."""
    agents = pytest.importorskip("agents")
    from agents import Agent, OpenAIChatCompletionsModel, Runner
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2

    from opentelemetry.instrumentation.openai_swarm import swarm_user
    from opentelemetry.instrumentation.openai_swarm.agents_sdk import instrument_agents

    service, user = f"ag-{uuid.uuid4().hex[:6]}", f"ag-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (OpenAIV2, {}), service=service) as tp:
        instrument_agents(tracer_provider=tp)  # adds the identity processor itself
        try:
            model = OpenAIChatCompletionsModel(model=MODEL, openai_client=openai.AsyncOpenAI(
                base_url=llm.url, api_key="test", max_retries=0))
            plain = Agent(name="Plain", instructions="[plain] You answer.", model=model)
            async def three():
                for _ in range(3):
                    await Runner.run(plain, "hi")

            with swarm_user(user):
                # in a context of its own: no Agents SDK trace or span another test left current
                ctx = contextvars.copy_context()
                for var in ctx:
                    if var.name.startswith("current_trace") or var.name.startswith("current_span"):
                        ctx.run(var.set, None)
                ctx.run(asyncio.run, three())
        finally:
            agents.set_trace_processors([])
    calls, tasks = _wait(store, migrated, service, 6, 3)
    assert calls == (3, 3, 36, 9, [user])
    assert tasks == [(user, 3, 3, 36, 9)]  # the Agents SDK's three tasks, no task of a copy
    by_agent = store.query(
        "SELECT agent, sum(calls), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.chat_usage_daily "
        "WHERE user_id = {u:String} GROUP BY agent", parameters={"db": migrated.SWARMLENS_DATABASE, "u": user}).result_rows
    assert by_agent == [("Plain", 3, 36, 9)]


def test_a_swarm_task_beside_openinference_counts_every_call_once(ingest, llm, store, migrated):
    """OpenInference's span of a completion (no response id, named ChatCompletion) sits beside the Swarm
    instrumentation's under the agent span: one call each, the task's totals unchanged."""
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference
    from swarm import Agent, Swarm

    from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user

    service, user = f"sw-{uuid.uuid4().hex[:6]}", f"sw-user-{uuid.uuid4().hex[:6]}"
    with _app(ingest, (SwarmInstrumentor, {}), (OpenInference, {"skip_dep_check": True}), service=service):
        client = Swarm(openai.OpenAI(base_url=llm.url, api_key="test", max_retries=0))
        agent = Agent(name="Plain", instructions="[plain] You answer.", model=MODEL)
        with swarm_user(user):
            for _ in range(2):
                client.run(agent=agent, messages=[{"role": "user", "content": "hi"}])
    calls, tasks = _wait(store, migrated, service, 4, 2)
    assert calls == (2, 2, 24, 6, [user])
    assert tasks == [(user, 2, 2, 24, 6)]
    by_agent = store.query(
        "SELECT agent, sum(calls), sum(input_tokens) FROM {db:Identifier}.chat_usage_daily WHERE user_id = {u:String} "
        "GROUP BY agent", parameters={"db": migrated.SWARMLENS_DATABASE, "u": user}).result_rows
    assert by_agent == [("Plain", 2, 24)]


@pytest.fixture(scope="module")
def desk():
    """The demo's support desk: a refund is Triage handing off to Billing, which calls two tools."""
    from swarmlens.demo.scenarios import build_script

    with ScriptedLLMServer(build_script()) as server:
        yield server


def _desk_truth(stream: bool) -> dict:
    """Per agent (calls, input, output) of what the scripted server answers to one refund task (a
    streamed one starts at Billing: see Scenario.path)."""
    from swarmlens.demo.scenarios import BY_NAME, NAMES, steps_with_usage

    truth: dict = {}
    for key, reply in steps_with_usage(BY_NAME["refund"], stream):
        calls, ins, outs = truth.get(NAMES[key], (0, 0, 0))
        truth[NAMES[key]] = (calls + 1, ins + reply["usage"]["prompt_tokens"], outs + reply["usage"]["completion_tokens"])
    return truth


@pytest.mark.parametrize("beside, order, stream", [
    ("genai-openai", "ours-first", False), ("genai-openai", "theirs-first", True),
    ("logfire", "ours-first", False), ("logfire", "theirs-first", True),
    ("openai-v2", "theirs-first", False), ("openai-v2", "ours-first", True)])
def test_a_swarm_task_beside_another_openai_instrumentation_counts_every_call_once(ingest, desk, store, migrated,
                                                                                  beside, order, stream):
    """The other instrumentation writes the chat spans and ours steps aside, in an app of its own
    (tests/pipeline/beside_app.py): the user's tokens per task, agent and call equal what the scripted
    server answered, and every call is stored once (a completion logfire streams too: its request span
    and its log of the stream are one call, migration 0016)."""
    if beside == "logfire":
        pytest.importorskip("logfire")
    elif beside == "genai-openai":
        pytest.importorskip("opentelemetry.instrumentation.genai.openai")
    service, user = f"bx-{uuid.uuid4().hex[:6]}", f"bx-user-{uuid.uuid4().hex[:6]}"
    desk.reset()
    app = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("beside_app.py")), "--beside", beside, "--order", order,
         "--llm-url", desk.url, "--endpoint", f"http://127.0.0.1:{ingest.http_port}/v1/traces",
         "--service", service, "--user", user, *(["--stream"] if stream else [])],
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGFIRE_"))},
        capture_output=True, text=True, timeout=180)
    assert app.returncode == 0 and "flushed=True" in app.stdout, app.stderr[-3000:]
    truth = _desk_truth(stream)
    calls, ins, outs = (sum(v[i] for v in truth.values()) for i in range(3))
    assert len(desk.requests) == calls  # one request per completion: no retries, nothing else asked

    (_, copies, call_ins, call_outs, users), tasks = _wait(store, migrated, service, calls, 1)
    assert (copies, call_ins, call_outs, users) == (0, ins, outs, [user])
    assert tasks == [(user, 1, calls, ins, outs)]
    db = migrated.SWARMLENS_DATABASE
    scopes = [r[0] for r in store.query(
        "SELECT DISTINCT scope_name FROM {db:Identifier}.chat_calls FINAL WHERE service_name = {s:String}",
        parameters={"db": db, "s": service}).result_rows]
    assert scopes and not any("openai_swarm" in s for s in scopes), scopes  # theirs, none of ours
    # each agent's tokens, from its runs and from its calls, are what the server answered it
    by_run = store.query(
        "SELECT agent, sum(turns), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.agent_runs FINAL "
        "WHERE service_name = {s:String} GROUP BY agent", parameters={"db": db, "s": service}).result_rows
    assert {r[0]: tuple(r[1:]) for r in by_run} == truth
    by_call = store.query(
        "SELECT agent, count(), sum(input_tokens), sum(output_tokens) FROM {db:Identifier}.chat_calls FINAL "
        "WHERE service_name = {s:String} AND duplicate_of = '' GROUP BY agent",
        parameters={"db": db, "s": service}).result_rows
    assert {r[0]: tuple(r[2:]) for r in by_call} == {agent: t[1:] for agent, t in truth.items()}
    # and one stored call per completion
    assert {r[0]: r[1] for r in by_call} == {agent: t[0] for agent, t in truth.items()}
