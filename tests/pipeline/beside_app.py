"""A Swarm app (the demo's support desk) beside another OpenAI instrumentation, for the pipeline tests.

Run as a subprocess, so that each instrumentation sets up its global state as in an app of its own:
with logfire, `logfire.configure()` makes the tracer provider and the Swarm instrumentation uses the
global one, as a logfire app would; with genai-openai or openai-v2, the app's SDK provider is global and
both instrument it. Every span goes over OTLP/HTTP to --endpoint. For --user it runs one refund task
(streamed with --stream), then flushes.
"""

import argparse
import sys

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from swarm import Swarm

from opentelemetry.instrumentation.openai_swarm import SwarmInstrumentor, swarm_user
from swarmlens.demo.agents import build_agents
from swarmlens.demo.scenarios import BY_NAME


def _theirs(beside: str, service: str, exporter):
    if beside == "logfire":
        import logfire

        logfire.configure(service_name=service, send_to_logfire=False, console=False,
                          additional_span_processors=[SimpleSpanProcessor(exporter)])
        logfire.instrument_openai()
        return logfire.force_flush
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if beside == "genai-openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()
    return provider.force_flush


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--beside", choices=["logfire", "genai-openai", "openai-v2"], required=True)
    p.add_argument("--order", choices=["ours-first", "theirs-first"], required=True)
    p.add_argument("--llm-url", required=True)
    p.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL")
    p.add_argument("--service", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()

    exporter = OTLPSpanExporter(endpoint=args.endpoint)
    if args.order == "ours-first":
        SwarmInstrumentor().instrument()
        flush = _theirs(args.beside, args.service, exporter)
    else:
        flush = _theirs(args.beside, args.service, exporter)
        SwarmInstrumentor().instrument()

    swarm = Swarm(openai.OpenAI(base_url=args.llm_url, api_key="test", max_retries=0, timeout=30))
    agents = build_agents()
    refund = BY_NAME["refund"]
    with swarm_user(args.user, session_id=args.user + "-session"):
        response = swarm.run(agent=agents[refund.start_agent(args.stream)],
                             messages=[{"role": "user", "content": refund.messages[0]}], stream=args.stream,
                             max_turns=20)
        if args.stream:
            for _ in response:
                pass
    ok = flush()
    print(f"flushed={ok}", flush=True)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
