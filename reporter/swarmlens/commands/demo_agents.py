"""`swarmlens demo-agents`: the demo's support desk as an OpenAI Agents SDK app
(swarmlens.demo.agents_sdk_app), sending spans over OTLP."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time

from swarmlens.demo.scenarios import BY_NAME, SCENARIOS, build_script, demo_users

# The scenarios an Agents SDK run plays exactly as the script has them (no failures).
PLAYABLE = tuple(s.name for s in SCENARIOS if not s.failing)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=int, default=10, help="tasks to run (default: 10)")
    p.add_argument("--users", type=int, default=12, help="demo users to spread them over (default: 12)")
    p.add_argument("--user", help="run every task as this user")
    p.add_argument("--scenario", choices=PLAYABLE, help="run only this scenario")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--forever", action="store_true", help="keep running tasks until Ctrl-C or SIGTERM (as under "
                                                          "`swarmlens up --demo`)")
    p.add_argument("--interval", type=float, default=3.0, help="seconds between tasks with --forever (default: 3)")
    p.add_argument("--otlp-endpoint", help="OTLP/HTTP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT, else "
                                           "http://127.0.0.1:4318)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OTEL_SERVICE_NAME", "swarmlens-demo-agents")
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")
    if args.otlp_endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
    from swarmlens.commands.common import demo_extra_missing

    if missing := demo_extra_missing("demo-agents"):
        print(missing, file=sys.stderr)
        return 2
    try:
        import agents  # noqa: F401
    except ImportError:
        print("swarmlens demo-agents: the OpenAI Agents SDK is not installed (pip install 'swarmlens[agents]')",
              file=sys.stderr)
        return 2
    import openai
    from opentelemetry import trace

    import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401  (the SDK from OTEL_*, as an app does)
    from opentelemetry.instrumentation.openai_swarm.agents_sdk import instrument_agents
    from swarmlens.demo.agents_sdk_app import build_agents, run_task
    from swarmlens.scripted_llm import ScriptedLLMServer

    instrument_agents()
    rng = random.Random(args.seed)
    users = [args.user] if args.user else demo_users(args.users)
    playable = [BY_NAME[args.scenario]] if args.scenario else [s for s in SCENARIOS if not s.failing]
    llm = ScriptedLLMServer(build_script()).start()
    ok = failed = 0
    try:
        client = openai.AsyncOpenAI(base_url=llm.url, api_key="scripted", max_retries=0, timeout=30)
        built = build_agents(client)

        async def all_tasks() -> None:
            nonlocal ok, failed
            i = -1
            while args.forever or i + 1 < args.tasks:
                i += 1
                if args.forever and i:
                    await asyncio.sleep(args.interval)
                scenario = rng.choices(playable, weights=[s.weight for s in playable])[0]
                user = users[i % len(users)]
                try:
                    await run_task(built, scenario.name, user, f"{user}-agents-{i // 3}",
                                   rng.choice(list(scenario.messages)))
                    ok += 1
                except Exception as exc:  # a demo run reports and goes on
                    failed += 1
                    print(f"task {i} ({scenario.name}) failed: {type(exc).__name__}: {exc}", file=sys.stderr)

        started = time.monotonic()
        signal.signal(signal.SIGTERM, _stop)
        try:
            asyncio.run(all_tasks())
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a normal end of a --forever run
            pass
    finally:
        llm.stop()
    flushed = trace.get_tracer_provider().force_flush(30000) if hasattr(trace.get_tracer_provider(),
                                                                         "force_flush") else True
    print(f"agents sdk demo: {ok} tasks ok, {failed} failed in {time.monotonic() - started:.1f}s"
          + ("" if flushed else " (spans not all flushed)"), flush=True)
    return 0 if failed == 0 and flushed else 1


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt
