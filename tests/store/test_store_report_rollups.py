"""Schemas 0007 to 0011 on an installation that already has data: the all-user rollups, agent_tasks,
task_search and the feedback's task columns are filled once from the detail tables, agree with them,
stay current through their views (agent_daily too, after 0011 replaced its view), and a re-run of
the migrations' statements counts nothing twice."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from swarmlens_testing.polling import rows_become
from swarmlens_testing.spans import Stretch, insert_spans, task_spans

DAY = datetime(2026, 5, 4, 23, 59, 59, tzinfo=timezone.utc)


def _q(client, cfg, sql, **params):
    params.setdefault("db", cfg.SWARMLENS_DATABASE)
    return client.query(sql, parameters=params).result_rows


def _tasks(rng, users, start):
    spans = []
    for k, user in enumerate(users):
        spans += task_spans(user_id=user, start=start + timedelta(minutes=k), rng=rng, input=f"task {k}",
                            stretches=[Stretch("Triage Agent", chats=[(100 + k, 10)]),
                                       Stretch("Refunds Agent", model="gpt-4o", chats=[(200, 20 + k), (50, 5)]),
                                       Stretch("Triage Agent", chats=[(30, 3)])])
    return spans


def _wait_for(client, cfg, sql, expected):
    return rows_become(client, sql, expected, db=cfg.SWARMLENS_DATABASE)


# Each pair: the all-user rollup's figures, and the same figures from the table it derives from.
PAIRS = {
    "tasks_daily_all": (
        "SELECT day, sum(tasks), sum(input_tokens), sum(output_tokens), sum(errors), uniqExactMerge(users) "
        "FROM {db:Identifier}.tasks_daily_all GROUP BY day ORDER BY day",
        "SELECT toDate(start_time, 'UTC') AS day, count(), sum(input_tokens), sum(output_tokens), "
        "countIf(status = 'error'), uniqExact(user_id) FROM {db:Identifier}.tasks FINAL GROUP BY day ORDER BY day"),
    "agent_model_daily": (
        "SELECT day, agent, model, sum(agent_runs), sum(input_tokens), sum(output_tokens), uniqExactMerge(users) "
        "FROM {db:Identifier}.agent_model_daily GROUP BY day, agent, model ORDER BY day, agent, model",
        "SELECT toDate(start_time, 'UTC') AS day, agent, model, count(), sum(input_tokens), sum(output_tokens), "
        "uniqExact(user_id) FROM {db:Identifier}.agent_runs FINAL GROUP BY day, agent, model "
        "ORDER BY day, agent, model"),
    "model_daily_all": (
        "SELECT day, model, sum(calls), sum(input_tokens), sum(output_tokens) "
        "FROM {db:Identifier}.model_daily_all GROUP BY day, model ORDER BY day, model",
        "SELECT toDate(start_time, 'UTC') AS day, model, count(), sum(input_tokens), sum(output_tokens) "
        "FROM {db:Identifier}.chat_calls FINAL GROUP BY day, model ORDER BY day, model"),
    "agent_tasks": (
        "SELECT agent, day, task_id, user_id, runs, input_tokens, output_tokens "
        "FROM {db:Identifier}.agent_tasks FINAL ORDER BY agent, day, task_id",
        "SELECT agent, toDate(start_time, 'UTC') AS day, task_id, any(user_id), count(), sum(input_tokens), "
        "sum(output_tokens) FROM {db:Identifier}.agent_runs FINAL GROUP BY agent, day, task_id "
        "ORDER BY agent, day, task_id"),
    # agent_daily (0006) lost its task states in 0011; what is left still agrees, before and after.
    "agent_daily": (
        "SELECT day, agent, sum(runs), sum(input_tokens), sum(output_tokens), uniqExactMerge(users) "
        "FROM {db:Identifier}.agent_daily GROUP BY day, agent ORDER BY day, agent",
        "SELECT toDate(start_time, 'UTC') AS day, agent, count(), sum(input_tokens), sum(output_tokens), "
        "uniqExact(user_id) FROM {db:Identifier}.agent_runs FINAL GROUP BY day, agent ORDER BY day, agent"),
    "task_search": (
        "SELECT start_time, task_id, user_id, status, input, output, agents, final_agent, handoffs, total_tokens "
        "FROM {db:Identifier}.task_search FINAL ORDER BY start_time, task_id",
        "SELECT start_time, task_id, user_id, status, input, output, agents, final_agent, handoffs, total_tokens "
        "FROM {db:Identifier}.tasks FINAL ORDER BY start_time, task_id"),
}


def test_0007_to_0011_backfill_existing_data_and_their_views_keep_it_current(fresh_databases):
    from swarmlens import config
    from swarmlens.store.client import connect
    from swarmlens.store.migrate import Target, load_migrations, migrate

    cfg = config.load(fresh_databases)
    target = Target.from_config(cfg)
    migrations = load_migrations()
    assert [m.version for m in migrations[6:8]] == [7, 8]
    client = connect(cfg)
    try:
        # An installation at schema 0006 with tasks over two UTC days and a vote in the old shape.
        migrate(client, target, migrations[:6])
        rng = random.Random(11)
        users = [f"user-{uuid.uuid4().hex[:6]}" for _ in range(3)]
        old = _tasks(rng, users, DAY)
        insert_spans(client, old, database=cfg.SWARMLENS_OTEL_DATABASE)
        voted = old[0]["TraceId"]
        n_tasks = _wait_for(client, cfg, "SELECT count() FROM {db:Identifier}.tasks FINAL", [(3,)])
        assert n_tasks == [(3,)]
        client.insert("feedback", [[voted, "voter-1", 1, "good"]], column_names=["task_id", "user_id", "vote", "comment"],
                      database=cfg.SWARMLENS_DATABASE)

        migrate(client, target, migrations)
        for name, (rollup, detail) in PAIRS.items():
            expected = _q(client, cfg, detail)
            assert expected and _q(client, cfg, rollup) == expected, name
        # The tasks start one minute apart from 23:59:59 UTC: the rollups cover two days.
        assert len(_q(client, cfg, PAIRS["tasks_daily_all"][1])) == 2
        assert len({r[1] for r in _q(client, cfg, PAIRS["agent_tasks"][1])}) == 2
        task = _q(client, cfg, "SELECT start_time, agents FROM {db:Identifier}.tasks FINAL WHERE task_id = {t:String}",
                  t=voted)[0]
        assert _q(client, cfg, "SELECT vote, comment, task_start_time, task_agents FROM {db:Identifier}.feedback "
                               "FINAL") == [(1, "good", task[0], task[1])]
        assert task[1] == ["Triage Agent", "Refunds Agent"]

        # Running the statements of 0007 and later again (a migration interrupted and re-run) adds nothing.
        before = {name: _q(client, cfg, rollup) for name, (rollup, _) in PAIRS.items()}
        for m in migrations[6:]:
            for statement in m.statements(target):
                client.command(statement)
        assert {name: _q(client, cfg, rollup) for name, (rollup, _) in PAIRS.items()} == before
        assert _q(client, cfg, "SELECT count() FROM {db:Identifier}.feedback FINAL") == [(1,)]

        # New spans reach the new tables through their views.
        insert_spans(client, _tasks(rng, users[:2], DAY + timedelta(days=3)), database=cfg.SWARMLENS_OTEL_DATABASE)
        assert _wait_for(client, cfg, "SELECT count() FROM {db:Identifier}.tasks FINAL", [(5,)]) == [(5,)]
        for name, (rollup, detail) in PAIRS.items():
            expected = _q(client, cfg, detail)
            assert _wait_for(client, cfg, rollup, expected) == expected, name
    finally:
        client.close()
