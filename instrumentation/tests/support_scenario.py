"""A small multi-agent support desk used by the instrumentation tests.

Triage hands off to Billing (by returning the Agent) or to Tech (by returning a Result that
carries the agent); the specialists use tools. Every reply's usage is given by the script, so
tests compute expected token figures from these constants alone.
"""

from __future__ import annotations

import copy

import openai
from swarm import Agent, Swarm
from swarm.types import Result

MODEL = "gpt-4o-mini"


def make_swarm(server) -> Swarm:
    """A Swarm on the real openai client, talking to a scripted server; no retries, so every
    request the server sees is one completion."""
    return Swarm(openai.OpenAI(base_url=server.url, api_key="test", max_retries=0, timeout=20))


def usage(p: int, c: int, **extra: int) -> dict:
    return {"prompt_tokens": p, "completion_tokens": c, **extra}


# --- replies, by scenario (the keyword in the user's message selects them) -----------------
TRIAGE_REFUND = {"when": "refund", "tool_calls": [{"name": "transfer_to_billing", "arguments": {}}],
                 "usage": usage(50, 7)}
TRIAGE_OUTAGE = {"when": "outage", "tool_calls": [{"name": "transfer_to_tech", "arguments": {}}],
                 "usage": usage(48, 6)}
TRIAGE_CRASH = {"when": "crash", "tool_calls": [{"name": "transfer_to_tech", "arguments": {}}],
                "usage": usage(47, 6)}
TRIAGE_HELLO = {"when": "hello", "content": "Hi! How can I help you today?", "usage": usage(20, 9)}
TRIAGE_RATELIMIT = {"when": "ratelimit", "error": {"status": 429, "message": "Rate limit reached"}}
TRIAGE_SERVERERROR = {"when": "servererror", "error": {"status": 500, "message": "upstream exploded"}}
TRIAGE_LOOP = [{"when": "loop", "tool_calls": [{"name": "ping", "arguments": {}}], "usage": usage(30 + i, 5)}
               for i in range(6)]
TRIAGE_MISSING = [{"when": "ghost", "tool_calls": [{"name": "no_such_tool", "arguments": {}}], "usage": usage(33, 4)},
                  {"when": "ghost", "content": "That did not work.", "usage": usage(44, 5)}]

BILLING_REFUND = [
    {"when": "refund", "tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-7"}}],
     "usage": usage(90, 12, cached_tokens=40)},
    {"when": "refund", "tool_calls": [{"name": "issue_refund", "arguments": {"invoice_id": "INV-7", "amount": 49}}],
     "usage": usage(120, 15)},
    {"when": "refund", "content": "Your refund of $49 for INV-7 is on its way.",
     "usage": usage(150, 18, reasoning_tokens=6)},
]
TECH_OUTAGE = [
    {"when": "outage", "tool_calls": [{"name": "check_status", "arguments": {"service": "api"}}], "usage": usage(80, 10)},
    {"when": "outage", "content": "The API is degraded; we are on it.", "usage": usage(110, 14)},
]
TECH_CRASH = [{"when": "crash", "tool_calls": [{"name": "restart_service", "arguments": {"service": "db"}}],
               "usage": usage(70, 9)}]

SCRIPT = {
    "model": MODEL,
    "agents": {
        "triage": {"match": "[agent:triage]", "name": "Triage",
                   "replies": [TRIAGE_REFUND, TRIAGE_OUTAGE, TRIAGE_CRASH, TRIAGE_HELLO, TRIAGE_RATELIMIT,
                               TRIAGE_SERVERERROR, *TRIAGE_LOOP, *TRIAGE_MISSING]},
        "billing": {"match": "[agent:billing]", "name": "Billing", "replies": BILLING_REFUND},
        "tech": {"match": "[agent:tech]", "name": "Tech", "replies": TECH_OUTAGE + TECH_CRASH},
    },
}

# The replies each scenario consumes, in order, by agent name.
FLOWS = {
    "refund": [("Triage", TRIAGE_REFUND)] + [("Billing", r) for r in BILLING_REFUND],
    "outage": [("Triage", TRIAGE_OUTAGE)] + [("Tech", r) for r in TECH_OUTAGE],
    "hello": [("Triage", TRIAGE_HELLO)],
}


def script(**overrides) -> dict:
    s = copy.deepcopy(SCRIPT)
    s.update(overrides)
    return s


class ToolFailure(RuntimeError):
    """What the restart_service tool raises."""


def build_agents():
    """Fresh agents (functions close over each other)."""
    calls: list[tuple] = []

    def lookup_invoice(invoice_id: str, context_variables: dict) -> str:
        calls.append(("lookup_invoice", invoice_id, context_variables.get("user_id")))
        return f"Invoice {invoice_id}: $49.00, paid, customer {context_variables.get('user_id')}"

    def issue_refund(invoice_id: str, amount: int) -> Result:
        calls.append(("issue_refund", invoice_id, amount))
        return Result(value=f"refunded {amount} on {invoice_id}", context_variables={"refunded": invoice_id})

    def check_status(service: str) -> str:
        calls.append(("check_status", service))
        return f"{service}: degraded"

    def restart_service(service: str) -> str:
        calls.append(("restart_service", service))
        raise ToolFailure(f"could not restart {service}")

    def ping() -> str:
        return "pong"

    billing = Agent(name="Billing", model=MODEL, instructions="[agent:billing] You handle invoices and refunds.",
                    functions=[lookup_invoice, issue_refund])
    tech = Agent(name="Tech", model=MODEL, instructions="[agent:tech] You handle outages.",
                 functions=[check_status, restart_service])

    def transfer_to_billing():
        """Hand the customer to billing."""
        return billing

    def transfer_to_tech():
        """Hand the customer to tech support."""
        return Result(value="Transferred to Tech", agent=tech, context_variables={"routed": "tech"})

    def triage_instructions(context_variables: dict) -> str:
        return f"[agent:triage] You route customers. Customer: {context_variables.get('user_id', 'anonymous')}."

    triage = Agent(name="Triage", model=MODEL, instructions=triage_instructions,
                   functions=[transfer_to_billing, transfer_to_tech, ping])
    return triage, billing, tech, calls


def expected_totals(flow: str) -> tuple[int, int]:
    steps = FLOWS[flow]
    return (sum(r["usage"]["prompt_tokens"] for _, r in steps), sum(r["usage"]["completion_tokens"] for _, r in steps))


def expected_by_agent(flow: str) -> dict[str, tuple[int, int, int]]:
    out: dict[str, list[int]] = {}
    for name, r in FLOWS[flow]:
        acc = out.setdefault(name, [0, 0, 0])
        acc[0] += r["usage"]["prompt_tokens"]
        acc[1] += r["usage"]["completion_tokens"]
        acc[2] += 1
    return {k: tuple(v) for k, v in out.items()}


# --- span helpers ---------------------------------------------------------------------------
OUR_SCOPE = "opentelemetry.instrumentation.openai_swarm"


def named(spans, prefix: str) -> list:
    """Spans whose name starts with `prefix`, in start order."""
    return sorted((s for s in spans if s.name.startswith(prefix)), key=lambda s: s.start_time)


def root_of(spans):
    roots = [s for s in spans if s.name == "invoke_workflow swarm" and s.parent is None]
    assert len(roots) == 1, [s.name for s in spans]
    return roots[0]


def children_of(spans, parent) -> list:
    return sorted((s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
                  key=lambda s: s.start_time)


def request_text(body_messages) -> str:
    """The documented estimate's input text, computed here from the JSON the server received."""
    out = []
    for m in body_messages:
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        for call in m.get("tool_calls") or []:
            out.append(call["function"]["name"] or "")
            out.append(call["function"]["arguments"] or "")
    return "".join(out)


def ceil4(n: int) -> int:
    return -(-n // 4)
