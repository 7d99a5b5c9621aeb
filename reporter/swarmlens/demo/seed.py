"""Configuration a demo needs to show cost and quotas: model prices for the demo's models, two
plans, and the demo users put on them. Applied by `swarmlens up --demo` to a database that has
none of it yet; a real deployment sets its own with `swarmlens prices/plans/users`."""

from __future__ import annotations

from typing import Mapping

from swarmlens import accounts
from swarmlens.demo.agents import MODELS
from swarmlens.demo.scenarios import demo_users, user_weights

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


# The showcase (`swarmlens demo --showcase`): what an app and its users add over time, so that a
# first start shows every page at work: votes (feedback page, agent scores, recommendations) and a
# user near their quota (quota warnings, alerts).
SHOWCASE_PLAN = "starter"
SHOWCASE_COMMENTS = {
    "up": ["Quick and right.", "Solved in one go, thanks!", "", "Clear answer.", ""],
    "down": ["The export still fails.", "Took far too long.", "Did not solve my problem.", ""],
}


def _votes(rows: list[dict]) -> list[tuple[dict, str]]:
    """Deterministic votes: failed tasks get thumbs-down, Sales and Billing answers mostly thumbs-up,
    Tech Support's long incident answers a mix; about one task in three gets a vote."""
    import zlib

    out = []
    for r in rows:
        h = zlib.crc32(r["task_id"].encode())
        if h % 3:
            continue
        agents = set(r["agents"] or ())
        if r["status"] == "error":
            vote = "down"
        elif agents & {"Sales", "Billing"}:
            vote = "up" if h % 10 else "down"
        elif "Tech Support" in agents:
            vote = "down" if h % 4 == 0 else "up"
        else:
            vote = "up" if h % 5 else "down"
        out.append((r, vote))
    return out


# How long the quotas the showcase sets keep telling the same story under live traffic: one user
# near quota (no live tasks from them), one over (who stays over), everyone else below
# COMFORT of their quota for at least this long.
STORY_HOURS = 48
COMFORT = 0.6


def _round_up(n: float) -> int:
    """Up to two significant digits: quotas read like ones a person set (1,300,000, not 1,283,417)."""
    import math

    n = max(1, math.ceil(n))
    step = 10 ** max(0, len(str(n)) - 2)
    return -(-n // step) * step


def showcase(tasks: list, users: int, stop, timeout: float = 120.0,
             interval: float = 2.0) -> tuple[list[str], str | None]:
    """Waits for the demo's tasks to reach ClickHouse, then votes on some of them and sizes the
    plans to the traffic: one user on a plan they have used 90% of this month (their live tasks
    pause), one over their plan's quota, and everyone else on a plan that the live traffic (a task
    every ``interval`` seconds) keeps below 60% for two days. Returns a line per thing done, and
    the user near quota."""
    import math
    import time
    from datetime import datetime, timedelta, timezone

    from swarmlens import config as config_mod
    from swarmlens.reports import common as rc
    from swarmlens.reports import feedback
    from swarmlens.store.client import StoreError, connect, query_file

    cfg = config_mod.load()
    ids = demo_users(users)
    since = datetime.now(timezone.utc) - timedelta(days=91)
    expected = sum(1 for t in tasks if t.outcome in ("ok", "failed"))
    try:
        client = connect(cfg)
    except StoreError as exc:
        return [f"showcase skipped: {exc}"], None
    try:
        deadline = time.monotonic() + timeout
        rows: list[dict] = []
        while not stop.is_set():
            rows = list(query_file(client, "demo_tasks", {"users": ids, "since": since}, config=cfg).named_results())
            if len(rows) >= expected or time.monotonic() > deadline:
                break
            stop.wait(1.0)
        if not rows:
            return [f"showcase skipped: no demo task reached ClickHouse within {timeout:.0f} s"], None
        votes = _votes(rows)
        for i, (task, vote) in enumerate(votes):
            comments = SHOWCASE_COMMENTS[vote]
            feedback.record(client, cfg, task=task, voter=task["user_id"], vote=vote, comment=comments[i % len(comments)])
        lines = [f"showcase: {len(votes)} feedback votes ({sum(v == 'up' for _, v in votes)} thumbs-up) "
                 f"on {len(rows)} tasks"]
        month = rc.this_month()
        quota_rows = [r for r in rc.quota_rows(client, cfg, month) if r["user_id"] in ids]
        used = sorted((int(r["tokens"] or 0), r["user_id"]) for r in quota_rows if int(r["tokens"] or 0) > 0)
        user = None
        if len(used) >= 2:
            tokens, user = used[len(used) // 2]  # a middling user: their live tasks pause
            quota = math.ceil(tokens / 0.9)
            accounts.set_plan(client, cfg, SHOWCASE_PLAN, quota=quota, warn_at_percent=80, display_name="Starter")
            accounts.upsert_user(client, cfg, user, plan=SHOWCASE_PLAN)
            lines.append(f"showcase: {user} is on plan {SHOWCASE_PLAN} ({quota:,} tokens a month), 90% used; "
                         f"no live tasks from them")
            over_tokens, over = used[-1]  # the heaviest user, over by a fifth; live traffic keeps them over
            free = max(1, math.floor(over_tokens / 1.2))
            accounts.set_plan(client, cfg, "free", quota=free, warn_at_percent=80, display_name="Free")
            accounts.upsert_user(client, cfg, over, plan="free")
            lines.append(f"showcase: {over} is on plan free ({free:,} tokens a month), over it")
            # Everyone else: live traffic adds tokens per task x the user's share of a task every
            # `interval` seconds (the paused user's share goes to the others).
            tasks_month = sum(int(r["tasks"] or 0) for r in quota_rows) or 1
            per_task = sum(t for t, _ in used) / tasks_month
            weights = dict(zip(ids, user_weights(len(ids))))
            live = sum(w for u, w in weights.items() if u != user)
            rest = [u for u in ids if u not in (user, over)]
            mine = {t_user: t for t, t_user in used}
            team = _round_up(max((mine.get(u, 0) + per_task * 3600.0 / max(interval, 0.01) * weights[u] / live
                                  * STORY_HOURS) / COMFORT for u in rest) if rest else 1)
            accounts.set_plan(client, cfg, "team", quota=team, warn_at_percent=80, display_name="Team")
            for u in ids:
                if u not in (user, over):
                    accounts.upsert_user(client, cfg, u, plan="team")
            lines.append(f"showcase: the other users are on plan team ({team:,} tokens a month): under "
                         f"{COMFORT:.0%} of it for {STORY_HOURS} hours of live traffic")
        return lines, user
    finally:
        client.close()
