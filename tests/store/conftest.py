"""Fixtures of the store tests: a config on fresh databases, migrated, and a client for it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def store_config(fresh_databases):
    from swarmlens import config

    return config.load(fresh_databases)


@pytest.fixture(scope="module")
def migrated(store_config):
    """The config, after `migrate` brought its databases up to date."""
    from swarmlens.store.migrate import migrate_from_config

    migrate_from_config(store_config)
    return store_config


@pytest.fixture(scope="module")
def store_client(store_config):
    from swarmlens.store.client import connect

    client = connect(store_config)
    yield client
    client.close()
