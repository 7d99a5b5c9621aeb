"""`swarmlens db check`: a rollup short of its details, or long, is found, named and repaired from
the details, and nothing that was right is touched."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from swarmlens.store.check import check
from swarmlens_testing.spans import Stretch, insert_spans, task_spans

DAY1 = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
DAY2 = datetime(2026, 4, 2, 9, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def data(migrated, store_client):
    rng = random.Random(3)
    for n in range(6):
        insert_spans(store_client, task_spans(
            user_id=f"u{n % 3}", start=(DAY1 if n < 4 else DAY2) + timedelta(minutes=n), rng=rng,
            stretches=[Stretch("Triage", tools=["lookup"]), Stretch("Sales", chats=[(100, 10), (50, 5)])]),
            database=migrated.SWARMLENS_OTEL_DATABASE)
    return migrated


def _q(client, sql, cfg, **params):
    return client.query(sql, parameters={"db": cfg.SWARMLENS_DATABASE, **params}).result_rows


def test_a_consistent_store_checks_clean(data, store_client):
    assert check(store_client, data) == []


def test_a_short_rollup_and_a_long_one_are_repaired_and_named(data, store_client):
    db = data.SWARMLENS_DATABASE
    want_tasks = _q(store_client, "SELECT user_id, sum(tasks), sum(input_tokens) FROM {db:Identifier}.tasks_daily "
                                  "GROUP BY user_id ORDER BY user_id", data)
    want_usage = _q(store_client, "SELECT sum(agent_runs), sum(input_tokens) FROM {db:Identifier}.usage_daily", data)
    # A crash between a source and its view: one day's rollup rows gone (short) ...
    store_client.command(f"ALTER TABLE `{db}`.tasks_daily DELETE WHERE day = toDate('2026-03-10') AND user_id = 'u1' "
                         "SETTINGS mutations_sync = 2")
    # ... and a block counted twice in another (long).
    store_client.command(f"INSERT INTO `{db}`.usage_daily SELECT * FROM `{db}`.usage_daily WHERE day = '2026-04-02'")
    found = check(store_client, data)
    assert {(f.table, f.partition) for f in found} == {(f"{db}.tasks_daily", "202603"),
                                                       (f"{db}.usage_daily", "202604")}
    assert not any(f.repaired for f in found)
    fixed = check(store_client, data, fix=True)
    assert {(f.table, f.partition, f.repaired) for f in fixed} == {(f"{db}.tasks_daily", "202603", True),
                                                                   (f"{db}.usage_daily", "202604", True)}
    assert _q(store_client, "SELECT user_id, sum(tasks), sum(input_tokens) FROM {db:Identifier}.tasks_daily "
                            "GROUP BY user_id ORDER BY user_id", data) == want_tasks
    assert _q(store_client, "SELECT sum(agent_runs), sum(input_tokens) FROM {db:Identifier}.usage_daily",
              data) == want_usage
    assert check(store_client, data) == []


def test_a_detail_table_short_of_raw_spans_is_rebuilt(data, store_client):
    db = data.SWARMLENS_DATABASE
    before = _q(store_client, "SELECT count() FROM {db:Identifier}.agent_runs FINAL", data)
    store_client.command(f"ALTER TABLE `{db}`.agent_runs DELETE WHERE user_id = 'u2' SETTINGS mutations_sync = 2")
    found = check(store_client, data, fix=True)
    assert (f"{db}.agent_runs", "202603") in {(f.table, f.partition) for f in found}
    assert all(f.repaired for f in found)
    assert _q(store_client, "SELECT count() FROM {db:Identifier}.agent_runs FINAL", data) == before
    assert check(store_client, data) == []


def test_the_command_says_what_it_repaired_and_exits_by_the_result(data, store_client, tmp_path):
    import os

    db = data.SWARMLENS_DATABASE
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWARMLENS_")},
           **{k: str(v) for k, v in data.items() if k in ("SWARMLENS_CLICKHOUSE_URL", "SWARMLENS_DATABASE",
                                                          "SWARMLENS_OTEL_DATABASE")},
           "SWARMLENS_DATA_DIR": str(tmp_path)}
    store_client.command(f"ALTER TABLE `{db}`.model_daily DELETE WHERE 1 SETTINGS mutations_sync = 2")
    run = lambda *a: subprocess.run([sys.executable, "-m", "swarmlens.cli", "db", "check", *a], env=env,
                                    capture_output=True, text=True, timeout=120)
    res = run()
    assert res.returncode == 1 and f"{db}.model_daily partition 202603" in res.stdout and "differs" in res.stdout
    res = run("--repair")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{db}.model_daily partition 202603" in res.stdout and "repaired" in res.stdout
    assert "every rollup now equals its details" in res.stdout
    res = run()
    assert res.returncode == 0 and "every rollup equals its details" in res.stdout
