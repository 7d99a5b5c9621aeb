"""The demo's OpenAI Agents SDK app: the Acme Cloud support desk of ``demo/agents.py``, built with
the OpenAI Agents SDK instead of Swarm, beside the Swarm demo.

Same agents, instructions (with their ``[agent:KEY]`` tags), tools and handoff names, so the
scripted LLM's demo script answers both apps alike, through the Responses API here, and a task of
a scenario costs the same tokens in either framework. It is instrumented as an Agents SDK app would
be: ``import opentelemetry.instrumentation.openai_swarm.auto`` sets up the SDK from ``OTEL_*``,
and ``instrument_agents()`` registers swarmlens' Agents SDK tracing processor. The user of each
task is given with ``swarm_user()``.

Run it next to ``swarmlens demo`` (it needs ``pip install 'swarmlens[agents]'``)::

    swarmlens demo-agents --tasks 20 --users 12
    swarmlens demo-agents --user ana@northwind --scenario refund   # one task of one user

Only the scenarios that end well are played: a failing tool or model call ends an Agents SDK run
differently from a Swarm run (the SDK hands a tool's error back to the model), so those are left
to the Swarm demo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from typing import Any

from swarmlens.demo.agents import (
    MODELS,
    NAMES,
    check_service_status,
    create_quote,
    get_pricing,
    issue_refund,
    reset_password,
    search_docs,
    update_plan,
)
from swarmlens.demo.scenarios import BY_NAME, SCENARIOS, build_script, demo_users

WORKFLOW = "acme support (agents sdk)"
# The scenarios an Agents SDK run plays exactly as the script has them (no failures).
PLAYABLE = tuple(s.name for s in SCENARIOS if not s.failing)


def build_agents(client: Any) -> dict[str, Any]:
    """The five agents as Agents SDK ``Agent`` objects on the Responses API of ``client``."""
    from agents import Agent, OpenAIResponsesModel, function_tool, handoff

    def lookup_invoice(invoice_id: str) -> str:
        """Look up an invoice of the current customer by its id."""
        from swarmlens.demo.agents import lookup_invoice as swarm_lookup

        return swarm_lookup(invoice_id, {})

    tools = {
        "billing": [lookup_invoice, issue_refund],
        "tech": [check_service_status, search_docs],
        "account": [reset_password, update_plan],
        "sales": [get_pricing, create_quote],
        "triage": [],
    }
    texts = {
        "triage": "You are the first line of Acme Cloud support. Greet the customer, work out what they need "
                  "and hand them to the right specialist.",
        "billing": "You handle invoices, charges and refunds for Acme Cloud.",
        "tech": "You are Acme Cloud technical support: outages, errors, integrations.",
        "account": "You manage Acme Cloud accounts: logins, plans, seats, cancellations.",
        "sales": "You are Acme Cloud sales: pricing, quotes and upgrades.",
    }
    agents = {key: Agent(name=NAMES[key], instructions=f"{texts[key]} [agent:{key}]",
                         model=OpenAIResponsesModel(model=MODELS[key], openai_client=client),
                         tools=[function_tool(f) for f in tools[key]])
              for key in NAMES}
    routes = {"triage": ["billing", "tech", "account", "sales"], "billing": ["triage"], "tech": ["triage"],
              "account": ["billing", "triage"], "sales": ["account", "triage"]}
    for key, targets in routes.items():  # the same tool names as the Swarm demo's handoff functions
        agents[key].handoffs = [handoff(agents[t], tool_name_override=f"transfer_to_{t}") for t in targets]
    return agents


async def run_task(agents: dict[str, Any], scenario_name: str, user: str, session: str, message: str) -> Any:
    """One task: the scenario's first agent answers ``message`` for ``user``."""
    from agents import RunConfig, Runner

    from opentelemetry.instrumentation.openai_swarm import swarm_user

    scenario = BY_NAME[scenario_name]
    with swarm_user(user, session_id=session):
        return await Runner.run(agents[scenario.start_agent()], message, max_turns=20,
                                run_config=RunConfig(workflow_name=WORKFLOW))


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarmlens demo-agents", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
