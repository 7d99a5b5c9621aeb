"""`swarmlens up` on non-default ports: the CLI line it prints works as printed, with nothing else
set, and the notifier it runs stops in order."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from swarmlens_testing.polling import wait_until
from swarmlens_testing.ports import free_port

pytestmark = pytest.mark.slow


def test_the_printed_cli_line_reaches_the_stack(tmp_path):
    ports = [free_port() for _ in range(4)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMLENS_", "OTEL_"))}
    log = tmp_path / "up.out"
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "up", "--data-dir", str(tmp_path / "data"),
                             "--clickhouse-port", str(ports[0]), "--otlp-grpc-port", str(ports[1]),
                             "--otlp-http-port", str(ports[2]), "--port", str(ports[3])],
                            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "swarmlens is up" in log.read_text() or proc.poll() is not None, 180,
                   what="`swarmlens up` to report it is up")
        out = log.read_text()
        assert proc.poll() is None, out
        line = re.search(r"^  CLI +(.+)$", out, re.M).group(1)
        assert f"--clickhouse-url http://127.0.0.1:{ports[0]}" in line
        assert "notifier" in out
        # As printed, in a shell that knows nothing of the stack (no SWARMLENS_* variable).
        shell_env = {**env, "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")}
        r = subprocess.run(line, shell=True, env=shell_env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("0 users, 1 ops account"), r.stdout
        # The same flags reach every command: a plan, then the notifier's log.
        for command in ("plans set trial --quota 1000", "notify log"):
            r = subprocess.run(line.replace("users list", command), shell=True, env=shell_env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("0 notifications")
        wait_until(lambda: "checking quotas" in (tmp_path / "data" / "logs" / "notifier.log").read_text(), 60,
                   what="the notifier's first line")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    assert out.index("stopped notifier") < out.index("stopped reporter") < out.index("stopped clickhouse")
