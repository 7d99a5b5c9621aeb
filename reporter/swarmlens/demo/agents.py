"""The demo's Swarm agents: the support desk of "Acme Cloud", a SaaS company.

Triage routes every conversation to one of four specialists through handoff functions
(``transfer_to_*``). The specialists have tools of their own and can hand a conversation on
(Sales to Account, Account to Billing) when a request spans areas. Each agent's instructions
carry an ``[agent:KEY]`` tag, which is how the scripted LLM recognises who is asking.

``cancel_subscription`` fails on purpose (the subscription service "is down"): a tool error is
one of the two kinds of failed task the demo produces, the other being an LLM error.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm import Agent

MODELS = {"triage": "gpt-4o-mini", "billing": "gpt-4o-mini", "tech": "gpt-4o", "account": "gpt-4o-mini",
          "sales": "gpt-4o"}
NAMES = {"triage": "Triage", "billing": "Billing", "tech": "Tech Support", "account": "Account", "sales": "Sales"}


class SubscriptionServiceError(RuntimeError):
    """The demo's failing backend: raised by cancel_subscription."""


def _n(text: str, mod: int) -> int:
    return zlib.crc32(text.encode()) % mod


# -- tools --------------------------------------------------------------------------------------

def lookup_invoice(invoice_id: str, context_variables: dict) -> str:
    """Look up an invoice of the current customer by its id."""
    amount = 19 + _n(invoice_id, 480)
    return f"Invoice {invoice_id} for {context_variables.get('user_id', 'the customer')}: ${amount}.00, paid."


def issue_refund(invoice_id: str, amount: float) -> str:
    """Refund an amount of an invoice to the customer's card."""
    return f"Refund of ${float(amount):.2f} on {invoice_id} issued; reference RF-{_n(invoice_id, 99999):05d}."


def check_service_status(service: str) -> str:
    """Current status of an Acme Cloud service (api, dashboard, storage, ...)."""
    return f"{service}: operational; last incident resolved {1 + _n(service, 23)} hours ago."


def search_docs(query: str) -> str:
    """Search the Acme Cloud documentation."""
    return f"Top result for '{query}': docs.acme.example/kb/{_n(query, 9000)}"


def reset_password(email: str) -> str:
    """Send a password reset link to the account's email address."""
    return f"Reset link sent to {email}; it expires in 30 minutes."


def update_plan(plan: str, seats: int) -> str:
    """Move the customer's account to another plan with a number of seats."""
    return f"Account moved to {plan} with {int(seats)} seats, effective today."


def cancel_subscription(reason: str) -> str:
    """Cancel the customer's subscription at the end of the billing period."""
    raise SubscriptionServiceError("subscription service unavailable (demo failure)")


def get_pricing(plan: str) -> str:
    """List price of a plan."""
    return f"{plan}: ${29 + _n(plan, 200)} per seat per month, billed annually."


def create_quote(plan: str, seats: int) -> str:
    """Create a sales quote for a number of seats of a plan."""
    return f"Quote Q-{_n(plan + str(seats), 99999):05d}: {int(seats)} seats of {plan}, valid 30 days."


def build_agents() -> dict[str, Agent]:
    """The five agents, keyed by their script key (triage, billing, tech, account, sales)."""
    # Swarm is imported here, not above: the scenarios and tools of this module serve the Agents SDK
    # app and the command line too, which must load without Swarm (the `demo` extra).
    from swarm import Agent

    agents: dict[str, Agent] = {}

    def handoff(key: str):
        def transfer():
            return agents[key]
        transfer.__name__ = f"transfer_to_{key}"
        transfer.__doc__ = f"Hand the conversation to {NAMES[key]}."
        return transfer

    def instructions(key: str, text: str) -> str:
        return f"{text} [agent:{key}]"

    agents["triage"] = Agent(
        name=NAMES["triage"], model=MODELS["triage"],
        instructions=instructions("triage", "You are the first line of Acme Cloud support. Greet the customer, "
                                            "work out what they need and hand them to the right specialist."),
        functions=[handoff("billing"), handoff("tech"), handoff("account"), handoff("sales")])
    agents["billing"] = Agent(
        name=NAMES["billing"], model=MODELS["billing"],
        instructions=instructions("billing", "You handle invoices, charges and refunds for Acme Cloud."),
        functions=[lookup_invoice, issue_refund, handoff("triage")])
    agents["tech"] = Agent(
        name=NAMES["tech"], model=MODELS["tech"],
        instructions=instructions("tech", "You are Acme Cloud technical support: outages, errors, integrations."),
        functions=[check_service_status, search_docs, handoff("triage")])
    agents["account"] = Agent(
        name=NAMES["account"], model=MODELS["account"],
        instructions=instructions("account", "You manage Acme Cloud accounts: logins, plans, seats, cancellations."),
        functions=[reset_password, update_plan, cancel_subscription, handoff("billing"), handoff("triage")])
    agents["sales"] = Agent(
        name=NAMES["sales"], model=MODELS["sales"],
        instructions=instructions("sales", "You are Acme Cloud sales: pricing, quotes and upgrades."),
        functions=[get_pricing, create_quote, handoff("account"), handoff("triage")])
    return agents
