"""A Swarm app, instrumented the zero-config way, for the pipeline tests.

Run as a subprocess with OTEL_EXPORTER_OTLP_ENDPOINT pointing at the collector. It runs the demo's
agents against the scripted LLM, one task per user id ``{run}-u{i}`` so the tests can find each
task, going through every scenario in turn (streamed on every other round where the scenario
allows it), and writes what it ran to ``--out`` as JSON.
"""

import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401  (first line, as the docs tell apps)

import argparse
import json
import sys
import time

import openai
from opentelemetry import trace
from swarm import Swarm

from swarmlens.demo.agents import build_agents
from swarmlens.demo.scenarios import SCENARIOS, build_script
from swarmlens.scripted_llm import ScriptedLLMServer


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--out", required=True)
    p.add_argument("--official", action="store_true",
                   help="also run the official OpenAI instrumentation (opentelemetry-instrumentation-openai-v2)")
    args = p.parse_args()
    if args.official:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()

    llm = ScriptedLLMServer(build_script()).start()
    swarm = Swarm(openai.OpenAI(base_url=llm.url, api_key="test", max_retries=0, timeout=30))
    agents = build_agents()
    ran = []
    for i in range(args.tasks):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        stream = (i // len(SCENARIOS)) % 2 == 1 and scenario.streamable
        user = f"{args.run}-u{i:04d}"
        error = ""
        try:
            response = swarm.run(agent=agents[scenario.start_agent(stream)],
                                 messages=[{"role": "user", "content": scenario.messages[0]}],
                                 context_variables={"user_id": user, "session_id": f"{args.run}-s{i // 3}"},
                                 stream=stream, max_turns=20)
            if stream:
                for _ in response:
                    pass
        except Exception as exc:  # scripted failures
            error = type(exc).__name__
        ran.append({"user_id": user, "scenario": scenario.name, "stream": stream, "error": error,
                    "ended": time.time()})
        if args.pause:
            time.sleep(args.pause)
    ok = trace.get_tracer_provider().force_flush(60000)
    llm.stop()
    with open(args.out, "w") as f:
        json.dump(ran, f)
    print(f"ran {len(ran)} tasks, flushed={ok}", flush=True)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
