"""The demo's OpenAI Agents SDK app: the Acme Cloud support desk of ``demo/agents.py``, built with
the OpenAI Agents SDK instead of Swarm, beside the Swarm demo.

Same agents, instructions (with their ``[agent:KEY]`` tags), tools and handoff names, so the
scripted LLM's demo script answers both apps alike, through the Responses API here, and a task of
a scenario costs the same tokens in either framework. It is instrumented as an Agents SDK app would
be: ``import opentelemetry.instrumentation.openai_swarm.auto`` sets up the SDK from ``OTEL_*``,
and ``instrument_agents()`` registers swarmlens' Agents SDK tracing processor. The user of each
task is given with ``swarm_user()``.

Run it next to ``swarmlens demo`` (it needs ``pip install 'swarmlens[demo,agents]'``; the command is
``swarmlens.commands.demo_agents``)::

    swarmlens demo-agents --tasks 20 --users 12
    swarmlens demo-agents --user ana@northwind --scenario refund   # one task of one user

Only the scenarios that end well are played: a failing tool or model call ends an Agents SDK run
differently from a Swarm run (the SDK hands a tool's error back to the model), so those are left
to the Swarm demo.
"""

from __future__ import annotations

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
from swarmlens.demo.scenarios import BY_NAME

WORKFLOW = "acme support (agents sdk)"


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
