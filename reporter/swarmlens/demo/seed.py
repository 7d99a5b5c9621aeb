"""Configuration a demo needs to show cost and quotas: model prices for the demo's models, two
plans, and the demo users put on them. Applied by `swarmlens up --demo` to a database that has
none of it yet; a real deployment sets its own with `swarmlens prices/plans/users`."""

from __future__ import annotations

from typing import Mapping

from swarmlens import accounts
from swarmlens.demo.agents import MODELS
from swarmlens.demo.scenarios import demo_users

# USD per 1M input / output tokens: public list prices when this demo was written.
DEMO_PRICES = {"gpt-4o": ("2.50", "10.00"), "gpt-4o-mini": ("0.15", "0.60")}
DEMO_PLANS = {"free": 20_000, "team": 250_000}


def seed_demo_configuration(client, config: Mapping, users: int = 12) -> list[str]:
    """Seeds what is missing; returns a line per thing it set."""
    done = []
    if not accounts.list_prices(client, config):
        for model in sorted(set(MODELS.values())):
            inp, out = DEMO_PRICES[model]
            accounts.set_price(client, config, model, usd_per_1m_input=inp, usd_per_1m_output=out)
        done.append(f"demo prices for {', '.join(sorted(set(MODELS.values())))}")
    if not accounts.list_plans(client, config):
        for plan, quota in DEMO_PLANS.items():
            accounts.set_plan(client, config, plan, quota=quota, display_name=plan.title())
        for i, user in enumerate(demo_users(users)):
            if accounts.get_user(client, config, user) is None:
                accounts.upsert_user(client, config, user, plan="free" if i % 3 == 0 else "team")
        done.append(f"plans {', '.join(DEMO_PLANS)} for {users} demo users")
    return done
