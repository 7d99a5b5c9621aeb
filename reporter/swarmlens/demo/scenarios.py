"""What the demo's customers ask, what the scripted LLM answers, and the plan of a demo run.

A scenario is one kind of support conversation. Its ``steps`` are the LLM replies in the order
the conversation consumes them, each by one agent: a tool call (a handoff is a call of
``transfer_to_*``), or the final answer. Every reply carries its token usage, so a task's token
totals are known before it runs; ``failing`` scenarios end in an error (the LLM answers 500, or
a tool raises) after their last step.

``build_script()`` turns the scenarios into one scripted-LLM script: each agent's replies are
the steps of every scenario, guarded by the scenario's ``keyword`` (``when``), which every
message of that scenario contains and no other does.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Sequence

from swarmlens.demo.agents import NAMES


def _tool(agent: str, name: str, **arguments) -> tuple[str, dict]:
    return agent, {"tool_calls": [{"name": name, "arguments": arguments}]}


def _say(agent: str, content: str) -> tuple[str, dict]:
    return agent, {"content": content}


def _fail(agent: str, status: int, message: str) -> tuple[str, dict]:
    return agent, {"error": {"status": status, "message": message}}


@dataclass(frozen=True)
class Scenario:
    name: str
    keyword: str
    size: str  # small / medium / large: the number of turns, roughly 1 / 3-4 / 8+
    weight: float
    messages: Sequence[str]
    steps: Sequence[tuple[str, dict]]
    failing: str = ""  # "" or the error type the task ends with
    tool_failure: bool = False  # the error comes from a tool after the last step, not from the LLM

    @property
    def streamable(self) -> bool:
        """Whether a streamed task can run it: after Triage's handoff, one agent only (see ``path``)."""
        rest = self.steps[1:] if self.steps[0][0] == "triage" and len(self.steps) > 1 else self.steps
        return len({agent for agent, _ in rest}) == 1

    def path(self, stream: bool = False) -> list[tuple[str, dict]]:
        """The steps one task consumes. Swarm 0.1.1's ``run_and_stream`` records the *starting*
        agent as the sender of every message, and the scripted LLM counts an agent's replies by
        sender, so a streamed task cannot hand off: it starts at the specialist directly (as a help
        widget on a product page would) and skips Triage's handoff."""
        if stream and self.steps[0][0] == "triage" and len(self.steps) > 1:
            return list(self.steps[1:])
        return list(self.steps)

    def start_agent(self, stream: bool = False) -> str:
        return self.path(stream)[0][0]

    def agents(self, stream: bool = False) -> list[str]:
        """Agent names in order of first activation, as the root span lists them."""
        seen: list[str] = []
        for key, _ in self.path(stream):
            if NAMES[key] not in seen:
                seen.append(NAMES[key])
        return seen


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("greeting", "what can you", "small", 10,
             ["Hi! What can you help me with?", "hello, what can you do for a new customer?"],
             [_say("triage", "Hi! I can help with billing, technical problems, your account and plans. "
                             "What do you need today?")]),
    Scenario("refund", "refund", "medium", 16,
             ["I was charged twice this month, I want a refund.", "Please refund my last invoice, we ended "
              "the trial in time.", "Can I get a refund for the duplicate charge?"],
             [_tool("triage", "transfer_to_billing"),
              _tool("billing", "lookup_invoice", invoice_id="INV-2041"),
              _tool("billing", "issue_refund", invoice_id="INV-2041", amount=49.0),
              _say("billing", "I found the duplicate charge on INV-2041 and refunded $49.00; you will see it on "
                              "your card within 3-5 business days.")]),
    Scenario("receipt", "receipt", "medium", 10,
             ["Where can I download the receipt for last month?", "I need a receipt with our VAT number."],
             [_tool("triage", "transfer_to_billing"),
              _tool("billing", "lookup_invoice", invoice_id="INV-1987"),
              _say("billing", "Your receipt for INV-1987 is under Settings > Billing > History; I have also "
                              "emailed it to you.")]),
    Scenario("outage", "outage", "medium", 14,
             ["Is there an outage? Our API calls time out.", "The dashboard looks like an outage from here, "
              "requests fail with 502."],
             [_tool("triage", "transfer_to_tech"),
              _tool("tech", "check_service_status", service="api"),
              _tool("tech", "search_docs", query="502 timeouts retry"),
              _say("tech", "There was a partial outage of the API between 09:10 and 09:25 UTC; it is resolved. "
                           "Retries with backoff, as described in the docs, avoid the 502s.")]),
    # Tech Support's answers grew: in the last 30 days it checks the incident log too, so the agent's
    # tokens per task rise, as the optimization guide of the agents page shows. plan() draws it instead
    # of "outage" for recent tasks.
    Scenario("incident", "incident", "medium", 0,
             ["Since the incident our API calls time out again.", "Is the incident from this morning back? "
              "Requests fail with 502."],
             [_tool("triage", "transfer_to_tech"),
              _tool("tech", "check_service_status", service="api"),
              _tool("tech", "search_docs", query="incident report api 502"),
              _tool("tech", "search_docs", query="502 timeouts retry backoff"),
              _say("tech", "The incident of this morning (API, 09:10 to 09:25 UTC) is resolved and has not "
                           "recurred; the incident report lists the affected regions. Retries with backoff, "
                           "as described in the docs, avoid the 502s.")]),
    Scenario("password", "password", "medium", 12,
             ["I forgot my password and cannot log in.", "Password reset emails never arrive."],
             [_tool("triage", "transfer_to_account"),
              _tool("account", "reset_password", email="owner@customer.example"),
              _say("account", "I have sent a new reset link to owner@customer.example; it is valid for 30 "
                              "minutes. Check the spam folder too.")]),
    Scenario("upgrade", "upgrade", "medium", 10,
             ["How much would an upgrade to the Team plan cost?", "We want to upgrade, what are the prices?"],
             [_tool("triage", "transfer_to_sales"),
              _tool("sales", "get_pricing", plan="Team"),
              _say("sales", "The Team plan is $79 per seat per month, billed annually. Shall I prepare a "
                            "quote?")]),
    Scenario("enterprise", "enterprise", "large", 10,
             ["We are 120 people and want to move to the Enterprise plan, and fix our billing too.",
              "Enterprise plan for our whole company please: quote, plan change and invoice."],
             [_tool("triage", "transfer_to_sales"),
              _tool("sales", "get_pricing", plan="Enterprise"),
              _tool("sales", "create_quote", plan="Enterprise", seats=120),
              _tool("sales", "transfer_to_account"),
              _tool("account", "update_plan", plan="Enterprise", seats=120),
              _tool("account", "transfer_to_billing"),
              _tool("billing", "lookup_invoice", invoice_id="INV-3120"),
              _say("billing", "Done: quote Q-120 accepted, your account is on Enterprise with 120 seats, and "
                              "INV-3120 will be prorated on the next invoice.")]),
    Scenario("export", "export", "medium", 4,
             ["The data export has been stuck for hours.", "Bulk export fails every time, can you check?"],
             [_tool("triage", "transfer_to_tech"),
              _tool("tech", "check_service_status", service="export"),
              _fail("tech", 500, "The model is overloaded (demo failure)")],
             failing="InternalServerError"),
    Scenario("cancel", "cancel", "medium", 4,
             ["Please cancel our subscription at the end of the month.", "How do I cancel? We are closing "
              "the project."],
             [_tool("triage", "transfer_to_account"),
              _tool("account", "cancel_subscription", reason="closing the project")],
             failing="SubscriptionServiceError", tool_failure=True),
)

BY_NAME = {s.name: s for s in SCENARIOS}


def _usage(scenario: Scenario, index: int, reply: dict) -> dict:
    """Deterministic, plausible usage: the prompt grows with the conversation."""
    jitter = zlib.crc32(f"{scenario.name}/{index}".encode()) % 40
    prompt = 150 + 65 * index + jitter
    if reply.get("content"):
        completion = max(8, len(reply["content"]) // 4)
    else:
        completion = 9 + 7 * sum(len(str(c.get("arguments"))) > 2 for c in reply.get("tool_calls", []))
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    if index >= 2:
        usage["cached_tokens"] = 64 * (index - 1)
    return usage


def steps_with_usage(scenario: Scenario, stream: bool = False) -> list[tuple[str, dict]]:
    """The replies of a task of the scenario with their usage (an error reply has none)."""
    out = []
    skipped = len(scenario.steps) - len(scenario.path(stream))
    for i, (agent, reply) in enumerate(scenario.steps):
        if i < skipped:
            continue
        reply = dict(reply, when=scenario.keyword)
        if "error" not in reply:
            reply["usage"] = _usage(scenario, i, reply)
        out.append((agent, reply))
    return out


def build_script() -> dict:
    """The scripted-LLM script of every scenario."""
    agents: dict[str, dict] = {key: {"match": f"[agent:{key}]", "name": name, "replies": []}
                               for key, name in NAMES.items()}
    for scenario in SCENARIOS:
        for agent, reply in steps_with_usage(scenario):
            agents[agent]["replies"].append(reply)
    agents["triage"]["fallback"] = {"content": "Could you tell me a bit more about what you need?",
                                    "usage": {"prompt_tokens": 120, "completion_tokens": 12}}
    return {"agents": agents, "chunk_size": 24}


def expected_usage(scenario: Scenario, stream: bool = False) -> tuple[int, int]:
    """(input tokens, output tokens) of one task of the scenario."""
    totals = [0, 0]
    for _, reply in steps_with_usage(scenario, stream):
        if "usage" in reply:
            totals[0] += reply["usage"]["prompt_tokens"]
            totals[1] += reply["usage"]["completion_tokens"]
    return totals[0], totals[1]


# -- the plan of a run ---------------------------------------------------------------------------

# Tasks younger than this take the grown variant of a scenario (see "incident").
RECENT_SECONDS = 30 * 86400.0

_FIRST = ("ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hiro", "ines", "jonas", "kofi", "lena",
          "marco", "nina", "omar", "priya", "quinn", "rosa", "sam", "tariq", "uma", "victor", "wen", "yara")
_COMPANY = ("northwind", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "acmecorp", "vandelay",
            "soylent", "tyrell", "cyberdyne")


def demo_users(count: int) -> list[str]:
    """``count`` distinct, stable user ids (emails)."""
    users = []
    for i in range(count):
        first = _FIRST[i % len(_FIRST)]
        company = _COMPANY[(i // len(_FIRST) + i) % len(_COMPANY)]
        suffix = "" if i < len(_FIRST) * len(_COMPANY) else str(i)
        users.append(f"{first}{suffix}@{company}.example")
    return users


def user_weights(count: int) -> list[float]:
    """How often each demo user asks, relative to the others: some customers talk to support much
    more than others."""
    return [1.0 / (1 + i % 7) for i in range(max(1, count))]


@dataclass
class Task:
    index: int
    scenario: Scenario
    user_id: str
    session_id: str
    message: str
    stream: bool
    offset_seconds: float = 0.0  # how far in the past the task is stamped (backfill), 0 = now
    outcome: str = field(default="", compare=False)

    @property
    def start_agent(self) -> str:
        return self.scenario.start_agent(self.stream)


def plan(count: int, users: int, *, seed: int = 7, stream_ratio: float = 0.3, backfill_days: float = 0.0,
         start_index: int = 0) -> list[Task]:
    """``count`` tasks over ``users`` users, scenarios drawn by weight; with backfill, each task gets a
    time in the past ``backfill_days`` days, oldest first (working hours favoured), so the history
    looks lived-in and each export batch covers few days."""
    rng = random.Random(seed * 1_000_003 + start_index)
    ids = demo_users(max(1, users))
    weights_of_users = user_weights(len(ids))
    weights = [s.weight for s in SCENARIOS]
    offsets: list[float] = []
    if backfill_days > 0:
        horizon = backfill_days * 86400.0
        while len(offsets) < count:
            off = rng.uniform(60.0, horizon)
            hour = (24 - (off / 3600.0) % 24) % 24  # rough local hour of that moment
            if 8 <= hour <= 19 or rng.random() < 0.35:
                offsets.append(off)
        offsets.sort(reverse=True)
    tasks = []
    for i in range(count):
        scenario = rng.choices(SCENARIOS, weights=weights)[0]
        user = rng.choices(ids, weights=weights_of_users)[0]
        offset = offsets[i] if offsets else 0.0
        if scenario.name == "outage" and offset < RECENT_SECONDS:
            scenario = BY_NAME["incident"]
        if user == ids[-1] and len(ids) > 1 and "Sales" in scenario.agents():
            # The last demo user never talks to Sales, a well-rated agent: the user page recommends it.
            scenario = BY_NAME["receipt"]
        n = start_index + i
        tasks.append(Task(index=n, scenario=scenario, user_id=user,
                          session_id=f"sess-{zlib.crc32(user.encode()) % 10000:04d}-{n // 5}",
                          message=rng.choice(list(scenario.messages)),
                          stream=rng.random() < stream_ratio and scenario.streamable,
                          offset_seconds=offset))
    return tasks
