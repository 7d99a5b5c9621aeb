"""A Swarm app and an OpenAI Agents SDK app, run by the same user, through rotel into the embedded
ClickHouse: one history on that user's page, each task with its agents, handoff and exact tokens."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest


pytest.importorskip("agents")

pytestmark = pytest.mark.slow


def test_a_swarm_task_and_an_agents_sdk_task_of_one_user_are_one_history(migrated, start_rotel, ch_client, pl,
                                                                         tmp_path):
    from swarmlens import auth
    from swarmlens.app import create_app
    from swarmlens.demo.scenarios import BY_NAME, expected_usage
    from swarmlens.store.client import connect

    rotel = start_rotel(migrated)
    run = f"two-{uuid.uuid4().hex[:8]}"
    # The Swarm app: its second task (user {run}-u0001) is the refund scenario.
    ran = pl.finish_app(pl.start_app(rotel.otlp_http_url, 2, run, tmp_path / "ran.json"), tmp_path / "ran.json")
    user = ran[1]["user_id"]
    assert ran[1]["scenario"] == "refund" and not ran[1]["stream"]
    # The Agents SDK demo app, the same scenario for the same user.
    agents_app = subprocess.run(
        [sys.executable, "-m", "swarmlens.commands", "demo-agents", "--tasks", "1", "--user", user, "--scenario",
         "refund", "--otlp-endpoint", rotel.otlp_http_url], capture_output=True, text=True, timeout=120)
    assert agents_app.returncode == 0, agents_app.stderr[-3000:]

    rows = pl.wait_until(lambda: (lambda r: r if len(r) >= 2 else None)(ch_client.query(
        "SELECT service_name, agents, start_agent, final_agent, handoffs, turns, input_tokens, output_tokens "
        "FROM {db:Identifier}.tasks FINAL WHERE user_id = {u:String} ORDER BY start_time",
        parameters={"db": migrated["SWARMLENS_DATABASE"], "u": user}).result_rows), 60,
        what="both tasks of the user")
    want_in, want_out = expected_usage(BY_NAME["refund"])
    assert len(rows) == 2, rows
    assert [r[0] for r in rows] == ["pipeline-test-app", "swarmlens-demo-agents"]
    for row in rows:  # the same scenario costs the same exact tokens in either framework
        assert row[1:] == (["Triage", "Billing"], "Triage", "Billing", 1, 4, want_in, want_out), row

    # per model and per agent too, for both tasks
    by_model = ch_client.query(
        "SELECT model, sum(input_tokens) FROM {db:Identifier}.chat_calls FINAL WHERE user_id = {u:String} "
        "GROUP BY model", parameters={"db": migrated["SWARMLENS_DATABASE"], "u": user}).result_rows
    assert sum(n for _, n in by_model) == 2 * want_in
    handoffs = ch_client.query(
        "SELECT count() FROM {db:Identifier}.agent_runs FINAL WHERE user_id = {u:String} AND handoff_from = 'Triage'",
        parameters={"db": migrated["SWARMLENS_DATABASE"], "u": user}).result_rows
    assert handoffs == [(2,)]

    # the reporter shows them as one history of that user
    cfg = dict(migrated, SWARMLENS_DATA_DIR=str(tmp_path / "data"))
    store = connect(cfg)
    login = f"ops-{run}"
    auth.set_ops_password(store, cfg, login, "a-long-password", create=True)
    token, _ = auth.create_token(store, cfg, scope="ops", owner=login, name="two frameworks")
    store.close()
    client = create_app(dict(cfg, TESTING=True)).test_client()
    resp = client.get(f"/api/v1/users/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.data[:500]
    items = resp.get_json()["tasks"]
    assert len(items) == 2
    assert [(t["agents"], t["handoffs"], t["total_tokens"]) for t in items] == \
        [(["Triage", "Billing"], 1, want_in + want_out)] * 2
    for item in items:  # each task's page: the exact tokens, its agents with theirs, and the handoff path
        detail = client.get(f"/api/v1/tasks/{item['task_id']}", headers={"Authorization": f"Bearer {token}"})
        assert detail.status_code == 200, detail.data[:500]
        body = detail.get_json()
        assert (body["user_id"], body["input_tokens"], body["output_tokens"]) == (user, want_in, want_out)
        assert body["handoff_path"], body


def test_with_the_official_openai_instrumentation_per_user_usage_by_model_is_complete(migrated, start_rotel,
                                                                                     ch_client, pl, tmp_path):
    """The chat spans are the official instrumentation's; the identity processor gives them the user,
    so chat_calls and model_daily attribute every token of every task to its user."""
    rotel = start_rotel(migrated)
    run = f"off-{uuid.uuid4().hex[:8]}"
    tasks = 9
    ran = pl.finish_app(pl.start_app(rotel.otlp_http_url, tasks, run, tmp_path / "ran.json", extra=("--official",)),
                        tmp_path / "ran.json")
    pl.wait_until(lambda: pl.task_count(ch_client, migrated, run) == tasks, 30, what="every task")
    pl.check_tasks(ch_client, migrated, ran, run)  # one chat span per completion: no duplicates
    db = migrated["SWARMLENS_DATABASE"]
    scopes = ch_client.query(
        "SELECT DISTINCT ScopeName FROM {otel:Identifier}.otel_traces WHERE SpanName LIKE 'chat %' AND TraceId IN "
        "(SELECT task_id FROM {db:Identifier}.tasks WHERE startsWith(user_id, {run:String}))",
        parameters={"db": db, "otel": migrated["SWARMLENS_OTEL_DATABASE"], "run": run + "-"}).result_rows
    assert scopes and all("openai_swarm" not in s[0] for s in scopes), scopes
    per_user = dict(ch_client.query(
        "SELECT user_id, sum(input_tokens) FROM {db:Identifier}.tasks FINAL WHERE startsWith(user_id, {run:String}) "
        "GROUP BY user_id", parameters={"db": db, "run": run + "-"}).result_rows)
    by_model = dict(pl.wait_until(lambda: (lambda r: r if dict(r) == per_user else None)(ch_client.query(
        "SELECT user_id, sum(input_tokens) FROM {db:Identifier}.model_daily WHERE startsWith(user_id, {run:String}) "
        "GROUP BY user_id", parameters={"db": db, "run": run + "-"}).result_rows), 30,
        what="per-user usage by model equal to the tasks' totals"))
    assert by_model == per_user and "" not in by_model
