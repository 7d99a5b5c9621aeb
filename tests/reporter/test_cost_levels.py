"""Cost comes from the chat level (migration 0014): an agent run without a model (the Agents SDK's),
a plain app's model call and a call without a user are all priced by their calls' models, and a
report's cost by model, by agent and by user add up to its total."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from swarmlens_testing.polling import wait_until
from swarmlens_testing.spans import Stretch, insert_spans, task_spans


def _extra_spans(now: datetime) -> list[dict]:
    rng = random.Random(7)
    spans = []
    # An Agents SDK task: its agent spans carry no model, its chat spans do.
    sdk = task_spans(user_id="frank", start=now, rng=rng, service_name="agents-app",
                     stretches=[Stretch("Planner", model="gpt-4o", chats=[(300, 40), (500, 60)])])
    for s in sdk:
        if s["SpanName"].startswith("invoke_agent"):
            s["SpanAttributes"].pop("gen_ai.request.model", None)
    spans += sdk
    # A plain OpenAI app's call for a user, and one without a user: roots of their own traces.
    for user, tokens in (("grace", (120, 30)), ("", (80, 20))):
        (chat,) = [s for s in task_spans(user_id=user, start=now + timedelta(seconds=1), rng=rng,
                                         stretches=[Stretch("x", chats=[tokens])]) if s["SpanName"].startswith("chat ")]
        attrs = {k: v for k, v in chat["SpanAttributes"].items() if k != "gen_ai.agent.name"}
        spans.append(dict(chat, ParentSpanId="", ScopeName="opentelemetry.instrumentation.openai_v2",
                          SpanAttributes=attrs))
    return spans


@pytest.fixture(scope="module")
def extra(ops, seeded):
    now = datetime.now(timezone.utc).replace(hour=0, minute=5, second=0, microsecond=0)
    insert_spans(seeded.client, _extra_spans(now), database=seeded.config["SWARMLENS_OTEL_DATABASE"])
    wait_until(lambda: {"grace", ""} <= {u["user_id"] for u in ops.get("/reports/monthly?format=json").get_json()["users"]},
               20, what="the plain app's user and the call without a user in the report")


def test_costs_by_model_agent_and_user_add_up_to_the_total(ops, extra):
    for kind in ("monthly", "weekly"):
        d = ops.get(f"/reports/{kind}?format=json").get_json()
        total = {t["key"]: t["current"] for t in d["totals"]}["cost_usd"]
        by = {table: math.fsum(float(r["cost_usd"] or 0) for r in d[table]) for table in ("models", "agents", "users")}
        assert total > 0
        assert all(abs(v - total) < 1e-9 for v in by.values()), (kind, total, by)
        assert not [m for m in d["models"] if not m["model"]], "tokens under an empty model"
        assert all(m["model"] for m in d["unpriced_models"])  # an operator can price every name listed
    d = ops.get("/reports/monthly?format=json").get_json()
    agents = {a["agent"]: a for a in d["agents"]}
    # the Agents SDK agent is priced by its calls' model although its runs have none
    assert agents["Planner"]["cost_usd"] > 0
    # calls outside any agent are a row of their own, so the agents add up
    assert agents[""]["cost_usd"] > 0 and not agents[""]["runs"]
    users = {u["user_id"]: u for u in d["users"]}
    assert users["grace"]["tasks"] == 1 and users["grace"]["tokens"] == 150 and users["grace"]["cost_usd"] > 0
    assert users[""]["cost_usd"] > 0  # the call without a user
    # the plain app's user has a page with the task
    page = ops.get("/users/grace")
    assert page.status_code == 200
    dash = ops.get("/?format=json").get_json()
    assert dash["unattributed_calls"] >= 1


def test_pages_show_calls_without_an_agent_or_a_user(ops, extra):
    html = ops.get("/reports/monthly")
    assert html.status_code == 200, html.data[:300]
    text = html.get_data(as_text=True)
    assert "(no agent)" in text and "(no user)" in text
    for path in ("/", "/agents", "/reports/monthly.csv"):
        assert ops.get(path).status_code == 200, path
