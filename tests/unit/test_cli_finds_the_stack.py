"""The CLI talks to the ClickHouse of the `swarmlens up` running on its data directory when no URL
is given (the stack may listen elsewhere than port 8123)."""

from __future__ import annotations

import argparse
import json
import os

from swarmlens.commands.common import clickhouse_overrides


def _state(data_dir, **doc):
    with open(os.path.join(data_dir, "up-state.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f)


def test_the_running_stack_names_the_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SWARMLENS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWARMLENS_CLICKHOUSE_URL", raising=False)
    args = argparse.Namespace()
    assert clickhouse_overrides(args)["SWARMLENS_CLICKHOUSE_URL"] is None  # no stack: the default
    _state(tmp_path, state="running", pid=os.getpid(), urls={"clickhouse": "http://127.0.0.1:28133"})
    assert clickhouse_overrides(args)["SWARMLENS_CLICKHOUSE_URL"] == "http://127.0.0.1:28133"
    # what the user gives wins, flag or environment
    assert clickhouse_overrides(argparse.Namespace(clickhouse_url="http://h:1"))["SWARMLENS_CLICKHOUSE_URL"] == \
        "http://h:1"
    monkeypatch.setenv("SWARMLENS_CLICKHOUSE_URL", "http://env:2")
    assert clickhouse_overrides(args)["SWARMLENS_CLICKHOUSE_URL"] is None
    monkeypatch.delenv("SWARMLENS_CLICKHOUSE_URL")
    # a stack that stopped, or whose process is gone, names nothing
    _state(tmp_path, state="stopped", pid=os.getpid(), urls={"clickhouse": "http://127.0.0.1:28133"})
    assert clickhouse_overrides(args)["SWARMLENS_CLICKHOUSE_URL"] is None
    _state(tmp_path, state="running", pid=2 ** 22 + 7, urls={"clickhouse": "http://127.0.0.1:28133"})
    assert clickhouse_overrides(args)["SWARMLENS_CLICKHOUSE_URL"] is None
