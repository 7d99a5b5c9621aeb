"""Fixtures of the reporter tests: fresh databases, migrated and seeded once per module with
contract-shaped spans through the real materialized views, plus an app and signed-in clients.

The seed is deterministic (seeded RNG) and relative to today (UTC), so that every dashboard period
has data: 65 days of tasks from four users over five agents, with handoffs, errors, a JSON input, an
XSS payload, an outlier and an agent whose tokens per task rose in the last 30 days."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from swarmlens_testing.polling import wait_until
from swarmlens_testing.spans import Stretch, insert_spans, task_spans

OPS_LOGIN, OPS_PASSWORD = "admin", "correct horse battery"
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00)}  # o3-mini stays unpriced on purpose
AGENT_MODEL = {"Triage Agent": "gpt-4o-mini", "Sales Agent": "gpt-4o", "Refunds Agent": "gpt-4o",
               "Support Agent": "gpt-4o-mini", "Billing Agent": "o3-mini"}
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
INPUTS = ["Where is my order 1234?", "Please refund my purchase of the blue kettle",
          "I want to buy a laptop for gaming", "Reset my password please", "The invoice for March is wrong",
          "Can I upgrade my subscription plan?"]
OUTPUTS = ["Your order ships tomorrow.", "The refund is on its way.", "Here are three laptops you may like.",
           "A reset link was sent to your email.", "I corrected the invoice.", "Your plan is upgraded."]
FLOWS = [["Triage Agent"], ["Triage Agent", "Sales Agent"], ["Triage Agent", "Refunds Agent"],
         ["Triage Agent", "Refunds Agent", "Triage Agent"], ["Triage Agent", "Support Agent"]]


@dataclass
class Seed:
    config: Any
    client: Any
    today: date
    task_ids: dict[str, str] = field(default_factory=dict)  # named special tasks
    tasks_by_user: dict[str, list[str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # principal name -> bearer token

    def raw(self, sql: str, **params) -> list[tuple]:
        """Independent SQL over the raw spans (otel_traces), never over the derived tables."""
        params.setdefault("otel", self.config["SWARMLENS_OTEL_DATABASE"])
        return self.client.query(sql, parameters=params).result_rows

    def day_ts(self, d: date) -> datetime:
        return datetime.combine(d, time(), tzinfo=timezone.utc)


def _stretches(rng: random.Random, flow: list[str], scale: float, error: bool) -> list[Stretch]:
    out = []
    for i, agent in enumerate(flow):
        chats = [(int(rng.randint(100, 600) * scale), int(rng.randint(20, 150) * scale))
                 for _ in range(rng.randint(1, 2))]
        tools = ["lookup_order"] if agent == "Support Agent" else []
        out.append(Stretch(agent, model=AGENT_MODEL[agent], chats=chats, tools=tools,
                           error_type="APITimeoutError" if error and i == len(flow) - 1 else ""))
    return out


def seed_all(cfg, client, today: date) -> Seed:
    from swarmlens import accounts, auth

    s = Seed(cfg, client, today)
    rng = random.Random(20260302)
    spans: list[dict] = []

    def add(user: str, start: datetime, flow: list[str], *, scale: float = 1.0, error: bool = False,
            text: int | None = None, input: str | None = None) -> str:
        k = rng.randrange(len(INPUTS)) if text is None else text
        rows = task_spans(user_id=user, start=start, rng=rng, stretches=_stretches(rng, flow, scale, error),
                          input=input if input is not None else INPUTS[k], output=OUTPUTS[k],
                          session_id=f"s-{user}-{start:%Y%m%d}", step=timedelta(milliseconds=rng.randint(20, 400)))
        spans.extend(rows)
        s.tasks_by_user.setdefault(user, []).append(rows[0]["TraceId"])
        return rows[0]["TraceId"]

    midnight = s.day_ts(today)
    users = ["alice", "bob", "carol"]
    for offset in range(65, 0, -1):
        day0 = midnight - timedelta(days=offset)
        for n in range(rng.randint(1, 3)):
            user = rng.choice(users)
            start = day0 + timedelta(hours=rng.randint(6, 20), minutes=rng.randint(0, 59), seconds=n)
            flow = ["Billing Agent"] if user == "bob" and rng.random() < 0.3 else rng.choice(FLOWS)
            # Sales Agent answers grow in the last 30 days: the optimization guide must notice.
            scale = 2.0 if (offset <= 29 and "Sales Agent" in flow) else 1.0
            add(user, start, flow, scale=scale, error=rng.random() < 0.12)
    # Today: every user has tasks this month whatever the date; minutes after midnight so that they
    # are never in tomorrow.
    for i, user in enumerate(["alice", "bob", "carol", "alice", "bob"]):
        add(user, midnight + timedelta(seconds=20 * i + 1), FLOWS[i % len(FLOWS)])
    s.task_ids["json"] = add("alice", midnight + timedelta(seconds=200), ["Triage Agent", "Sales Agent"],
                             input='{"order": 42, "items": ["kettle", "mug"], "gift": true}')
    s.task_ids["xss"] = add("alice", midnight + timedelta(seconds=210), ["Triage Agent"], input=XSS)
    s.task_ids["outlier"] = add("carol", midnight + timedelta(seconds=220), ["Triage Agent", "Sales Agent"], scale=12)
    s.task_ids["error"] = add("carol", midnight + timedelta(seconds=230), ["Triage Agent", "Refunds Agent"], error=True)
    s.task_ids["handoff"] = add("bob", midnight + timedelta(seconds=240), ["Triage Agent", "Refunds Agent", "Triage Agent"])
    s.task_ids["billing"] = add("bob", midnight + timedelta(seconds=250), ["Billing Agent"])
    # Active this month, never configured: no plan, no quota.
    s.task_ids["unconfigured"] = add("erin", midnight + timedelta(seconds=260), ["Triage Agent"])
    insert_spans(client, spans, database=cfg["SWARMLENS_OTEL_DATABASE"])

    for model, (pin, pout) in PRICES.items():
        accounts.set_price(client, cfg, model, usd_per_1m_input=pin, usd_per_1m_output=pout)
    # Quotas sized from this month's usage: alice at ~85% (warning), bob at 125% (over), carol far below.
    month_start = today.replace(day=1)
    used = dict(s.raw(
        "SELECT SpanAttributes['enduser.id'], sum(toUInt64(SpanAttributes['swarm.task.usage.input_tokens']) "
        "+ toUInt64(SpanAttributes['swarm.task.usage.output_tokens'])) FROM {otel:Identifier}.otel_traces "
        "WHERE SpanName = 'invoke_workflow swarm' AND Timestamp >= {s:DateTime64(3)} GROUP BY 1",
        s=s.day_ts(month_start)))
    accounts.set_plan(client, cfg, "team", quota=math.ceil(used["alice"] / 0.85), display_name="Team")
    accounts.set_plan(client, cfg, "free", quota=int(used["bob"] / 1.25), display_name="Free")
    accounts.set_plan(client, cfg, "pro", quota=10_000_000, display_name="Pro")
    accounts.upsert_user(client, cfg, "alice", plan="team", display_name="Alice A.")
    accounts.upsert_user(client, cfg, "bob", plan="free")
    accounts.upsert_user(client, cfg, "carol", plan="pro")
    accounts.upsert_user(client, cfg, "dave", plan="pro")  # configured, never active

    auth.set_ops_password(client, cfg, OPS_LOGIN, OPS_PASSWORD, create=True)
    s.tokens["alice"], _ = auth.create_token(client, cfg, scope="user", owner="alice", name="alice app")
    s.tokens["bob"], _ = auth.create_token(client, cfg, scope="user", owner="bob", name="bob app")
    s.tokens["ops"], _ = auth.create_token(client, cfg, scope="ops", owner=OPS_LOGIN, name="ops script")

    # Feedback: Billing Agent (used by bob only) is well rated; alice has never used it.
    from swarmlens.reports import feedback, task as task_report

    def stored_task(task_id: str) -> dict:
        # The tasks view fills its table just after the spans' insert returns.
        return wait_until(lambda: task_report.find(client, cfg, task_id), 30, 0.05, f"task {task_id} in tasks")

    billing = stored_task([t for t in s.tasks_by_user["bob"]][-1])
    handoff = stored_task(s.task_ids["handoff"])
    feedback.record(client, cfg, task=billing, voter="bob", vote="up", comment="quick and right")
    feedback.record(client, cfg, task=billing, voter="carol", vote="up", comment="")
    feedback.record(client, cfg, task=handoff, voter="bob", vote="down", comment="took too long")
    return s


@pytest.fixture(scope="module")
def seeded(fresh_databases, tmp_path_factory):
    from swarmlens import config
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import migrate_from_config

    cfg = config.load({**fresh_databases, "SWARMLENS_SECRET_KEY": "test-secret-key",
                       "SWARMLENS_DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    migrate_from_config(cfg)
    client = connect(cfg)
    s = seed_all(cfg, client, datetime.now(timezone.utc).date())
    yield s
    client.close()


@pytest.fixture(scope="module")
def app(seeded):
    from swarmlens.app import create_app

    overrides = {k: v for k, v in seeded.config.items() if k.startswith("SWARMLENS_")}
    application = create_app({**overrides, "TESTING": True})
    yield application
    application.extensions["swarmlens_pool"].close()


def login(client, login=OPS_LOGIN, password=OPS_PASSWORD):
    import re

    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"csrf_token": csrf, "mode": "ops", "login": login, "password": password})


def csrf_of(client, path="/login") -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def ops(app):
    c = app.test_client()
    r = login(c)
    assert r.status_code == 302, r.get_data(as_text=True)
    return c


@pytest.fixture(scope="module")
def anon(app):
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def h():
    """Helpers and constants for test modules (importlib mode cannot import conftest directly)."""
    from types import SimpleNamespace

    return SimpleNamespace(login=login, csrf_of=csrf_of, bearer=bearer, OPS_LOGIN=OPS_LOGIN,
                           OPS_PASSWORD=OPS_PASSWORD, PRICES=PRICES, AGENT_MODEL=AGENT_MODEL, XSS=XSS)
