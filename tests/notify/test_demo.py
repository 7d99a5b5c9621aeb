"""The demo: no unplanned errors under concurrency, exit 0 on Ctrl-C, a flag for its LLM port, and
data that shows every feature on first start (growing tokens, votes, a user near quota, a
recommendation)."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone


from swarmlens_testing.polling import wait_until


def _demo(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMLENS_", "OTEL_"))}
    env["OTEL_SDK_DISABLED"] = "true"  # no collector here: the spans are not what these tests look at
    return subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "demo", "--no-progress",
                             "--otlp-endpoint", "http://127.0.0.1:9", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_concurrent_tasks_run_as_scripted_on_the_given_llm_port():
    from swarmlens_testing.ports import free_port

    port = free_port()
    p = _demo("--tasks", "300", "--concurrency", "6", "--llm-port", str(port))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert f"scripted LLM at http://127.0.0.1:{port}/v1" in out
    summary = re.search(r"demo: 300 tasks in [\d.]+ s: (\d+) ok, (\d+) failed as scripted", out)
    assert summary, out
    assert "unexpectedly" not in out and "no reply left" not in out


def test_a_taken_llm_port_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = _demo("--tasks", "1", "--llm-port", str(port))
        out, _ = p.communicate(timeout=120)
    assert p.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out and "--llm-port" in out and "Traceback" not in out


def test_ctrl_c_stops_the_demo_with_status_0():
    p = _demo("--tasks", "5", "--forever", "--interval", "0.1")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    wait_until(lambda: any("until stopped" in line for line in lines), 120, what="the demo's --forever phase")
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 0, "".join(lines)
    reader.join(10)
    assert re.search(r"demo: \d+ tasks in [\d.]+ s: \d+ ok", "".join(lines)), "".join(lines)


def _tech_tokens(task) -> int:
    from swarmlens.demo.scenarios import steps_with_usage

    return sum(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
               for agent, r in steps_with_usage(task.scenario, task.stream) if agent == "tech" and "usage" in r)


def test_the_backfill_has_an_agent_whose_tokens_grow_and_a_user_who_never_met_sales():
    from swarmlens.demo.scenarios import RECENT_SECONDS, demo_users, plan

    tasks = plan(600, 12, backfill_days=90)
    recent = [_tech_tokens(t) for t in tasks if t.offset_seconds < RECENT_SECONDS and _tech_tokens(t)]
    older = [_tech_tokens(t) for t in tasks if RECENT_SECONDS <= t.offset_seconds < 2 * RECENT_SECONDS
             and _tech_tokens(t)]
    assert recent and older
    # The agents page lists a rise of 10% or more in the optimization guide.
    assert sum(recent) / len(recent) > 1.1 * sum(older) / len(older)
    last = demo_users(12)[-1]
    mine = [t for t in tasks if t.user_id == last]
    assert mine and all("Sales" not in t.scenario.agents(t.stream) for t in mine)


def test_showcase_adds_votes_a_user_near_quota_one_over_and_a_recommendation(store, monkeypatch):
    """What `swarmlens up --demo` writes once the backfill has landed: one user near quota, one
    over, everyone else comfortably under, for two days of live traffic."""
    from swarmlens.demo.scenarios import demo_users
    from swarmlens.demo.seed import SHOWCASE_PLAN, showcase
    from swarmlens.reports import common as rc
    from swarmlens.reports import users as users_report
    from swarmlens_testing.spans import Stretch, insert_spans, task_spans

    cfg, client = store.config, store.client
    ids = demo_users(12)
    rng = random.Random(8)
    now = datetime.now(timezone.utc)
    start = max(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now - timedelta(days=3))
    spans = []
    for i in range(60):
        user = ids[i % 11]  # the last demo user never talks to Sales
        agent = ["Sales", "Billing", "Tech Support"][i % 3]
        spans += task_spans(user_id=user, rng=rng, start=start + timedelta(minutes=i),
                            stretches=[Stretch("Triage", chats=[(200, 20)]), Stretch(agent, chats=[(400, 60)])])
    spans += task_spans(user_id=ids[11], rng=rng, start=start, stretches=[Stretch("Triage", chats=[(200, 20)]),
                                                                         Stretch("Billing", chats=[(300, 40)])])
    insert_spans(client, spans, database=cfg["SWARMLENS_OTEL_DATABASE"])
    for key, value in cfg.items():
        if key.startswith("SWARMLENS_"):
            monkeypatch.setenv(key, str(value))

    def landed():
        return client.query("SELECT count() FROM {db:Identifier}.tasks WHERE user_id IN {u:Array(String)}",
                            parameters={"db": cfg["SWARMLENS_DATABASE"], "u": ids}).result_rows[0][0] == 61

    wait_until(landed, 30, what="the demo users' tasks")
    lines, paused = showcase([], 12, threading.Event(), interval=2.0)
    assert lines[0].startswith("showcase: ") and "feedback votes" in lines[0], lines
    votes = int(re.search(r"(\d+) feedback votes", lines[0]).group(1))
    assert votes >= 10
    near = re.search(r"showcase: (\S+) is on plan starter", lines[1]).group(1)
    assert paused == near
    row = rc.quota_rows(client, cfg, rc.this_month(), user=near)[0]
    assert row["plan"] == SHOWCASE_PLAN and row["level"] == "warn" and 89.0 <= row["percent"] < 91.0
    rows = {r["user_id"]: r for r in rc.quota_rows(client, cfg, rc.this_month()) if r["user_id"] in ids}
    levels = sorted(r["level"] for r in rows.values())
    assert levels.count("over") == 1 and levels.count("warn") == 1, levels
    over = next(u for u, r in rows.items() if r["level"] == "over")
    assert rows[over]["plan"] == "free" and f"showcase: {over} is on plan free" in lines[2]
    # The others: under 60% now and after 48 hours of a task every 2 s at this data's tokens per task.
    from swarmlens.demo.scenarios import user_weights

    per_task = sum(int(r["tokens"] or 0) for r in rows.values()) / sum(int(r["tasks"] or 0) for r in rows.values())
    weights = dict(zip(ids, user_weights(12)))
    live = sum(w for u, w in weights.items() if u != near)
    for u, r in rows.items():
        if u in (near, over):
            continue
        later = int(r["tokens"] or 0) + per_task * 1800 * weights[u] / live * 48
        assert r["plan"] == "team" and r["level"] == "ok" and later <= 0.6 * int(r["quota"]) + 1, (u, r)

    ratings = users_report.agent_ratings(client, cfg, users_report.recommendation_window())
    assert ratings["Sales"]["votes"] >= 2 and ratings["Sales"]["up"] / ratings["Sales"]["votes"] >= 0.6
    used = [{"agent": "Triage"}, {"agent": "Billing"}]
    rec = users_report.recommendation(client, cfg, ids[11], used, ratings)
    assert "Sales" in [r["agent"] for r in rec["try_next"]]
