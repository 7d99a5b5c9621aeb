"""Zero-config import and `opentelemetry-instrument`, each in a fresh interpreter, exporting over
OTLP/HTTP to a real receiver that decodes the protobuf requests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import support_scenario as sc

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

APP = textwrap.dedent("""
    import os
    ORDER = os.environ["APP_ORDER"]
    if ORDER == "auto-first":
        import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401
    import openai
    import swarm
    if ORDER == "auto-last":
        import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401
    if ORDER == "app-sdk":  # the app configures the SDK itself; opentelemetry-instrument instruments
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    import support_scenario as sc
    client = swarm.Swarm(openai.OpenAI(base_url=os.environ["LLM_URL"], api_key="x", max_retries=0))
    triage, *_ = sc.build_agents()
    response = client.run(triage, [{"role": "user", "content": "I want a refund"}],
                          context_variables={"user_id": "sub-user"})
    print("final agent:", response.agent.name)
""")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.received.append((self.path, self.headers.get("Content-Type"), request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


def _spans(received):
    out = []
    for path, content_type, request in received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append({"name": span.name, "scope": ss.scope.name, "resource": resource,
                                "trace_id": span.trace_id, "span_id": span.span_id,
                                "parent": span.parent_span_id,
                                "attributes": {kv.key: _value(kv.value) for kv in span.attributes}})
    return out


def _run_app(tmp_path, receiver, llm, order, command_prefix=()):
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "APP_ORDER": order,
        "LLM_URL": llm.url,
        "PYTHONPATH": str(HERE),
        "OTEL_SERVICE_NAME": f"swarm-app-{order}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing is sent before exit: proves the flush at exit
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    })
    result = subprocess.run([*command_prefix, str(BIN / "python"), str(app)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "final agent: Billing" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return _spans(receiver.received)


def _check_task(spans, official_chats=False):
    ours = [s for s in spans if s["scope"] == sc.OUR_SCOPE]
    roots = [s for s in ours if s["name"] == "invoke_workflow swarm"]
    assert len(roots) == 1
    root = roots[0]
    assert root["parent"] == b""
    assert all(s["trace_id"] == root["trace_id"] for s in spans)
    assert all(s["attributes"].get("enduser.id") == "sub-user" for s in ours)
    assert (root["attributes"]["swarm.task.usage.input_tokens"],
            root["attributes"]["swarm.task.usage.output_tokens"]) == sc.expected_totals("refund")
    assert root["attributes"]["swarm.task.agents"] == ["Triage", "Billing"]
    agents = {s["span_id"]: s for s in ours if s["name"].startswith("invoke_agent ")}
    assert sorted(a["attributes"]["gen_ai.agent.name"] for a in agents.values()) == ["Billing", "Triage"]
    chats = [s for s in spans if s["name"].startswith("chat ")]
    # One chat span per completion under our agent spans. When every installed OpenAI instrumentation
    # runs (opentelemetry-instrument loads openai-v2 and genai-openai alike), the second one's span
    # nests in the first one's; either way none of ours duplicates them.
    top = [c for c in chats if c["parent"] in agents]
    assert len(top) == len(sc.FLOWS["refund"])
    if not official_chats:
        assert len(chats) == len(top)
    assert all((c["scope"] == sc.OUR_SCOPE) != official_chats for c in chats)
    # whoever made them, the chat spans carry the user and the agent of the task
    assert all(c["attributes"].get("enduser.id") == "sub-user" for c in chats)
    assert [agents[c["parent"]]["attributes"]["gen_ai.agent.name"] for c in top] == \
        [c["attributes"]["gen_ai.agent.name"] for c in top]
    assert len([s for s in ours if s["name"].startswith("execute_tool ")]) == 3
    return root


@pytest.mark.parametrize("order", ["auto-first", "auto-last"])
def test_zero_config_import_before_or_after_swarm(tmp_path, receiver, llm, order):
    spans = _run_app(tmp_path, receiver, llm, order)
    root = _check_task(spans)
    assert root["resource"]["service.name"] == f"swarm-app-{order}"


def test_opentelemetry_instrument_entry_point(tmp_path, receiver, llm):
    # opentelemetry-instrument loads every installed instrumentor: ours and the official OpenAI one,
    # so the chat spans are theirs and ours are the parents.
    import importlib.util

    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is not there either
            return False

    official = installed("opentelemetry.instrumentation.openai_v2") or installed(
        "opentelemetry.instrumentation.genai.openai")
    spans = _run_app(tmp_path, receiver, llm, "app-sdk", command_prefix=(str(BIN / "opentelemetry-instrument"),))
    # alone (an environment of the test matrix), ours makes the chat spans
    _check_task(spans, official_chats=official)
