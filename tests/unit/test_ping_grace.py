"""A slow engine is not a down one: the reporter's health check degrades on a refused connection at
once, and on missed timeouts only once they have lasted SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS."""

from __future__ import annotations

import socket

from support_polling import wait_until


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
