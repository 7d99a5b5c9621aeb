"""Shared fixtures: one embedded ClickHouse (chDB over the real HTTP interface) per test
session, and fresh random databases per test module so tests never see each other's rows."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ["TZ"] = "UTC"
# Tests never read or write the user's own data directory (and its generated ClickHouse password).
os.environ["SWARMLENS_DATA_DIR"] = os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"swarmlens-tests-{os.getpid()}")


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory):
    """The embedded endpoint, started on a free loopback port for the whole session."""
    from swarmlens.embedded.server import EmbeddedClickHouse

    ep = EmbeddedClickHouse(str(tmp_path_factory.mktemp("clickhouse")), port=0).start()
    yield ep
    ep.stop()


@pytest.fixture()
def make_endpoint(clickhouse_server):
    """Starts extra endpoints (other credentials or limits) on the session's data directory:
    chDB runs one engine per process, so every endpoint of a process shares its directory."""
    from swarmlens.embedded.server import EmbeddedClickHouse

    started = []

    def make(**kwargs):
        ep = EmbeddedClickHouse(clickhouse_server.data_dir, port=0, **kwargs).start()
        started.append(ep)
        return ep

    yield make
    for ep in started:
        ep.stop()


@pytest.fixture(scope="session")
def clickhouse_url(clickhouse_server) -> str:
    return clickhouse_server.url


@pytest.fixture()
def ch_client(clickhouse_url):
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    yield client
    client.close()


def _fresh_db_names() -> dict:
    suffix = uuid.uuid4().hex[:10]
    return {"SWARMLENS_OTEL_DATABASE": f"otel_{suffix}", "SWARMLENS_DATABASE": f"swarmlens_{suffix}"}


@pytest.fixture(scope="module")
def fresh_databases(clickhouse_url):
    """Config overrides naming a random (otel, swarmlens) database pair, dropped afterwards."""
    import clickhouse_connect

    names = _fresh_db_names()
    overrides = {"SWARMLENS_CLICKHOUSE_URL": clickhouse_url, **names}
    yield overrides
    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    for db in names.values():
        client.command(f"DROP DATABASE IF EXISTS `{db}`")
    client.close()
