"""Crash safety of `swarmlens up`: under 2,000 task-shaped spans/s, kill -9 of each process, a
SIGSTOP of ClickHouse, a restart of the receiver and kill -9 of the whole tree lose no acknowledged
span and store none twice, and afterwards every rollup equals its details.

Short runs (about a minute each); bench/bench_faults.py runs the long ones of docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from swarmlens_testing.faults import Load, Stack
from swarmlens_testing.polling import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture()
def stack(tmp_path):
    st = Stack(tmp_path / "data", tmp_path / "up.log").start()
    yield st
    st.stop()


def _assert_whole(tally: dict, stack: Stack) -> None:
    assert tally["acknowledged"] > 0, tally
    assert tally["lost"] == 0, f"acknowledged spans lost: {tally}"
    assert tally["duplicates"] == 0, f"spans stored twice: {tally}"
    check = stack.db_check()
    assert check.returncode == 0 and "every rollup equals its details" in check.stdout, check.stdout + check.stderr


def _settle(seconds: float, load: Load) -> None:
    """Lets the load run on for a while (the faults happen under traffic)."""
    before = load.counts()[0]
    wait_until(lambda: load.counts()[0] >= before + 2000 * seconds * 0.5, seconds * 4 + 20,
               what="traffic to flow")


def test_kill9_of_each_process_sigstop_and_restart_lose_nothing(stack, tmp_path):
    load = Load(stack.otlp_url, f"each-{uuid.uuid4().hex[:8]}").start()
    try:
        _settle(2, load)
        for name in ("ingest", "clickhouse", "reporter"):
            before = stack.restarts(name)
            os.kill(stack.pid(name), signal.SIGKILL)
            stack.wait_restarted(name, before)
            _settle(2, load)
        ch = stack.pid("clickhouse")
        os.kill(ch, signal.SIGSTOP)
        try:
            _settle(3, load)  # the receiver keeps acknowledging into its log
        finally:
            os.kill(ch, signal.SIGCONT)
        before = stack.restarts("ingest")
        os.kill(stack.pid("ingest"), signal.SIGTERM)  # a collector restart
        stack.wait_restarted("ingest", before)
        _settle(2, load)
    finally:
        load.stop()
    client = stack.client()
    try:
        tally = load.tally(client)
    finally:
        client.close()
    print("\neach process:", tally)
    _assert_whole(tally, stack)
    # Every crash was seen and logged, and the stack kept running.
    out = stack.output()
    for name in ("ingest", "clickhouse", "reporter"):
        assert f"{name} exited with status -9; restarting" in out, out[-3000:]
    assert stack.proc.poll() is None
    # `swarmlens status` tells what runs, how often it restarted, and that nothing is behind.
    status = wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(stack.status()), 30,
                        what="`swarmlens status` to report a healthy stack")
    for line in ("clickhouse  running", "ingest      running", "reporter    running"):
        assert line in status.stdout, status.stdout
    assert "2 restart(s)" in status.stdout and "acknowledged" in status.stdout, status.stdout


def test_kill9_of_the_whole_tree_loses_nothing(tmp_path):
    stack = Stack(tmp_path / "data", tmp_path / "up.log").start()
    load = Load(stack.otlp_url, f"tree-{uuid.uuid4().hex[:8]}", retry_window=60).start()
    try:
        _settle(3, load)
        stack.kill_everything()
        time.sleep(0.5)  # the senders meet refused connections and retry, as the SDK does
        stack.start()    # same data directory and ports
        _settle(3, load)
    finally:
        load.stop()
    try:
        assert "the last run ended uncleanly" in stack.output().split("swarmlens up: data in")[-1], \
            "the restart after an unclean end did not check the rollups"
        client = stack.client()
        try:
            tally = load.tally(client)
        finally:
            client.close()
        print("\nwhole tree:", tally)
        _assert_whole(tally, stack)
    finally:
        stack.stop()


def test_up_gives_up_after_five_crashes_of_one_child_within_a_minute(tmp_path):
    stack = Stack(tmp_path / "data", tmp_path / "up.log").start()
    try:
        for n in range(5):
            before = stack.restarts("ingest")
            os.kill(stack.pid("ingest"), signal.SIGKILL)
            if n < 4:
                stack.wait_restarted("ingest", before, timeout=60)
        assert stack.proc.wait(timeout=120) == 1
    finally:
        stack.stop()
    out = stack.output()
    assert "ingest exited with status -9, its 5th crash within 60 s; giving up and stopping" in out, out[-3000:]
    for pause in ("0.5", "1.0", "2.0", "4.0"):
        assert f"restarting in {pause} s" in out, out[-3000:]
    assert "stopped clickhouse" in out
