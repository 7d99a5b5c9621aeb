"""A slow engine is not a down one: the reporter's health check degrades on a refused connection at
once, and on missed timeouts only once they have lasted SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS."""

from __future__ import annotations

import socket

from swarmlens_testing.polling import wait_until


def _pool(port: int, grace: float):
    from swarmlens.web.common import ClientPool

    return ClientPool({"SWARMLENS_CLICKHOUSE_URL": f"http://127.0.0.1:{port}", "SWARMLENS_CLICKHOUSE_USER": "default",
                       "SWARMLENS_CLICKHOUSE_PASSWORD": "", "SWARMLENS_CLICKHOUSE_PING_SECONDS": 0.2,
                       "SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS": grace})


def test_a_ping_that_times_out_is_slow_until_the_grace_runs_out_and_a_refusal_is_down_at_once():
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        port = silent.getsockname()[1]
        pool = _pool(port, grace=1.0)
        assert pool.health() is None                       # one slow answer: still usable
        reason = wait_until(lambda: pool.health(), 10, interval=0.1, what="the grace to run out")
        assert "did not answer /ping within 0.2 s" in reason and ", for " in reason
    finally:
        silent.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _pool(closed, grace=60).health() is not None    # refused: down at once, whatever the grace


def test_status_answers_within_a_second_and_says_unknown_while_the_engine_does_not_answer(tmp_path):
    import json
    import os
    import subprocess
    import sys
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        (tmp_path / "up-state.json").write_text(json.dumps({
            "pid": os.getpid(), "state": "running", "children": [],
            "urls": {"clickhouse": f"http://127.0.0.1:{silent.getsockname()[1]}"}}))
        from swarmlens.commands.status import gather

        t0 = time.monotonic()
        facts = gather(str(tmp_path))
        assert time.monotonic() - t0 < 5.0  # bounded by its 1 s deadline, not by the silent server
        assert facts["clickhouse"]["state"] == "unknown" and not facts["problems"]
        # The whole command, process start included (a loaded machine took over 60 s when every
        # command's module was imported).
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "swarmlens.cli", "status", "--json", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
        took = time.monotonic() - t0
        assert json.loads(out.stdout)["clickhouse"]["state"] == "unknown" and out.returncode == 0, out.stderr
        assert took < 15.0, took  # the interpreter's start is in it; status is bounded at 1 s (it took 60 s once)
    finally:
        silent.close()
