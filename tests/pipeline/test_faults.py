"""Faults on the single-machine pipeline, with no loss and no duplicates:

- the embedded ClickHouse (its own subprocess, `swarmlens clickhouse`) stops for a few seconds
  while tasks stream in, then starts again on the same data directory and port: rotel finds the
  connection refused and retries its batches intact;
- rotel restarts while the app keeps sending: on SIGTERM it exports what it holds, and the app's
  OTLP exporter retries refused requests within its retry window (OTEL_EXPORTER_OTLP_TIMEOUT,
  10 s by default) until rotel is back.
"""

from __future__ import annotations

import time
import uuid

import clickhouse_connect
import pytest

from swarmlens import config as config_mod

pytestmark = pytest.mark.slow


@pytest.fixture()
def own_clickhouse(tmp_path, pl):
    ch = pl.ClickHouseProcess(tmp_path / "clickhouse", pl.free_port(), tmp_path / "clickhouse.log").start()
    yield ch
    ch.stop()


def test_clickhouse_outage_mid_stream_loses_and_duplicates_nothing(own_clickhouse, start_rotel, pl, tmp_path):
    from swarmlens.store.migrate import migrate_from_config

    cfg = config_mod.load({"SWARMLENS_CLICKHOUSE_URL": own_clickhouse.url})
    migrate_from_config(cfg)
    rotel = start_rotel(cfg)
    run = f"chdown-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ran.json"
    tasks = 90
    # about 11 s of traffic: a loaded machine must not let the app finish within the 3 s outage
    app = pl.start_app(rotel.otlp_http_url, tasks, run, out, pause=0.12)

    client = clickhouse_connect.get_client(dsn=own_clickhouse.url)
    pl.wait_until(lambda: pl.task_count(client, cfg, run) >= 3, 30, what="the first tasks")
    client.close()
    own_clickhouse.stop()           # mid-stream: tasks keep coming, rotel cannot insert
    time.sleep(3)
    assert app.poll() is None, "the app finished before the outage ended; the test proves nothing"
    own_clickhouse.start()          # same data directory, same port

    ran = pl.finish_app(app, out)
    client = clickhouse_connect.get_client(dsn=own_clickhouse.url)
    try:
        # rotel backs off while ClickHouse is down, so give its retries time.
        pl.wait_until(lambda: pl.task_count(client, cfg, run) == tasks, 60, what="every task after the outage")
        time.sleep(1.0)  # a duplicate would arrive with the last retries
        pl.check_tasks(client, cfg, ran, run)
    finally:
        client.close()
    log = (tmp_path / "rotel.log").read_text(errors="replace")
    assert "refused" in log.lower() or "error" in log.lower(), "rotel never saw the outage"


def test_rotel_restart_within_the_sdk_retry_window_loses_and_duplicates_nothing(
        fresh_databases, start_rotel, ch_client, pl, tmp_path):
    from swarmlens.store.migrate import migrate_from_config

    cfg = config_mod.load(fresh_databases)
    migrate_from_config(cfg)
    grpc, http = pl.free_port(), pl.free_port()
    rotel = start_rotel(cfg, grpc_port=grpc, http_port=http)
    run = f"rotelrs-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ran.json"
    tasks = 45
    app = pl.start_app(rotel.otlp_http_url, tasks, run, out, pause=0.12)

    pl.wait_until(lambda: pl.task_count(ch_client, cfg, run) >= 3, 30, what="the first tasks")
    assert rotel.stop(grace=20) == 0    # SIGTERM: rotel exports what it holds
    time.sleep(1.5)                      # the app's exports are refused meanwhile
    assert app.poll() is None, "the app finished before rotel came back; the test proves nothing"
    start_rotel(cfg, grpc_port=grpc, http_port=http)

    ran = pl.finish_app(app, out)
    pl.wait_until(lambda: pl.task_count(ch_client, cfg, run) == tasks, 30, what="every task after the restart")
    time.sleep(1.0)
    pl.check_tasks(ch_client, cfg, ran, run)
