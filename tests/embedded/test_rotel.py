"""rotel from PyPI, with its default ClickHouse exporter settings (lz4 compressed blocks,
decompress=1, async_insert), writing OTLP spans through the embedded endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import clickhouse_connect
import pytest
import rotel
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from swarmlens_testing.polling import rows_become
from swarmlens_testing.ports import free_port
from swarmlens import config as config_mod
from swarmlens.store.migrate import migrate_from_config

ROTEL = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")




@pytest.fixture(scope="module")
def migrated(fresh_databases):
    cfg = config_mod.load(fresh_databases)
    migrate_from_config(cfg)
    return cfg


@pytest.fixture()
def rotel_agent(migrated, clickhouse_url, tmp_path):
    grpc, http = free_port(), free_port()
    proc = subprocess.Popen(
        [ROTEL, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}", "--otlp-http-endpoint", f"127.0.0.1:{http}",
         "--exporter", "clickhouse", "--clickhouse-exporter-endpoint", clickhouse_url,
         "--clickhouse-exporter-database", migrated.SWARMLENS_OTEL_DATABASE, "--batch-timeout", "100ms"],
        stdout=open(tmp_path / "rotel.log", "wb"), stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", http), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{http}"
    proc.terminate()
    proc.wait(timeout=10)


def test_rotel_inserts_contract_spans_through_the_endpoint(rotel_agent, migrated, clickhouse_url):
    otel = migrated.SWARMLENS_OTEL_DATABASE
    db = migrated.SWARMLENS_DATABASE
    provider = TracerProvider(resource=Resource.create({"service.name": "support-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=rotel_agent + "/v1/traces")))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_swarm")
    for i in range(10):
        user = f"user-{i % 3}"
        common = {"gen_ai.provider.name": "openai", "enduser.id": user, "session.id": f"s-{i}"}
        with tracer.start_as_current_span("invoke_workflow swarm", attributes={
            **common, "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "swarm",
            "gen_ai.agent.name": "Triage", "swarm.task.input": f"question {i} ünïcode",
            "swarm.task.output": "answer", "swarm.task.agents": ["Triage", "Billing"],
            "swarm.task.final_agent": "Billing", "swarm.task.handoffs": 1, "swarm.task.turns": 2,
            "swarm.task.usage.input_tokens": 100 + i, "swarm.task.usage.output_tokens": 10 + i,
        }) as root:
            with tracer.start_as_current_span("invoke_agent Triage", attributes={
                **common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Triage",
                "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 60, "gen_ai.usage.output_tokens": 5,
                "swarm.agent.turns": 1,
            }):
                with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                    **common, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 60, "gen_ai.usage.output_tokens": 5,
                }):
                    pass
            with tracer.start_as_current_span("invoke_agent Billing", attributes={
                **common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Billing",
                "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 40 + i,
                "gen_ai.usage.output_tokens": 5 + i, "swarm.agent.turns": 1, "swarm.handoff.from": "Triage",
            }) as agent_span:
                agent_span.add_event("note", {"k": "v"})
            if i == 9:
                root.set_status(Status(StatusCode.ERROR, "boom"))
                root.set_attribute("error.type", "RuntimeError")
    provider.shutdown()

    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    assert rows_become(client, f"SELECT count() FROM {otel}.otel_traces", [(40,)]) == [(40,)]
    row = client.query(f"""
        SELECT ServiceName, SpanKind, SpanAttributes['enduser.id'], Events.Name, Events.Attributes, Duration > 0
        FROM {otel}.otel_traces WHERE SpanName = 'invoke_agent Billing' AND SpanAttributes['session.id'] = 's-4'
    """).result_rows
    assert row == [("support-app", "Internal", "user-1", ["note"], [{"k": "v"}], True)]
    # the views' rows become visible just after the raw part while rotel's last insert is in flight
    assert rows_become(client, f"SELECT count() FROM {db}.tasks", [(10,)]) == [(10,)]
    tasks = rows_become(client, f"""
        SELECT user_id, agents, final_agent, input, input_tokens, output_tokens, status
        FROM {db}.tasks FINAL WHERE session_id = 's-9'""", None, timeout=0)
    assert tasks == [("user-0", ["Triage", "Billing"], "Billing", "question 9 ünïcode", 109, 19, "error")]
    totals = client.query(f"SELECT count(), sum(input_tokens), sum(output_tokens) FROM {db}.tasks FINAL").result_rows
    assert totals == [(10, sum(100 + i for i in range(10)), sum(10 + i for i in range(10)))]
    client.close()
