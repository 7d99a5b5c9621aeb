"""What every benchmark script shares: a progress bar on stderr, the rewrite of one `## ` section
of docs/benchmarks.md (so each script owns its section and leaves the others alone), and the
embedded ClickHouse endpoint in a process of its own, as `swarmlens up` runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request


def progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def write_section(path: str, heading: str, text: str) -> None:
    """Replaces one `## ` section of a Markdown file (appends it when absent)."""
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    start = old.find(heading + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text.rstrip("\n") + "\n" + ("\n" + old[end + 1:] if end >= 0 else "")
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo, for the machine line of a result."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def start_endpoint(ch_dir: str, password: str, data_dir: str | None = None) -> tuple[subprocess.Popen, str]:
    """`swarmlens clickhouse` serving ``ch_dir`` on a free loopback port with ``password``;
    returns the process and its URL once it answers /ping. Its log goes to a file beside
    ``ch_dir`` (a pipe nobody reads could fill and stop it). ``data_dir``: its SWARMLENS_DATA_DIR."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SWARMLENS_CLICKHOUSE_PASSWORD": password}
    if data_dir:
        env["SWARMLENS_DATA_DIR"] = data_dir
    log_path = os.path.abspath(ch_dir).rstrip("/") + "-endpoint.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--data-dir", ch_dir,
                                 "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_endpoint(proc)
                raise SystemExit(f"the endpoint did not start:\n{open(log_path).read()[-2000:]}")
            time.sleep(0.1)


def stop_endpoint(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
