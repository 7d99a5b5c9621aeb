"""The two distributions as a user installs them: both wheels built from this checkout, each
installed into a clean virtual environment, run from outside the source tree.

- the app's venv gets opentelemetry-instrumentation-openai-swarm alone: it imports, it is found
  by `opentelemetry-instrument`, and nothing of the service side (swarmlens, flask, chdb) is there;
- the server's venv gets swarmlens: what a server needs, without the demo's Swarm, openai or the
  instrumentation (`swarmlens demo` says to install `swarmlens[demo]`); with `swarmlens[demo]` and the
  instrumentation's wheel, `swarmlens up --demo` runs from the wheel and the demo's tasks land in
  ClickHouse.

Packages come from pip's cache and the configured index (no other network); the versions are
those of constraints.txt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from swarmlens_testing.polling import wait_until
from swarmlens_testing.ports import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "-q", "--progress-bar", "off"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SWARMLENS_", "OTEL_", "PYTHON", "VIRTUAL_ENV"))}


def _run(argv, timeout=600, cwd=None):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_clean_env())
    assert res.returncode == 0, f"{argv}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    # Built from a copy of the files git knows (tracked or new, not ignored): a build/ directory left
    # in the checkout by an earlier build would put stale modules into the wheel.
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
          "-w", str(out), str(src / "instrumentation"), str(src)])
    built = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(built) == {"opentelemetry_instrumentation_openai_swarm", "swarmlens"}, built
    return built


def _venv(path: Path) -> Path:
    venv.create(path, with_pip=True, symlinks=True)
    return path / "bin" / "python"


SERVICE = ("opentelemetry.instrumentation.openai_swarm", "swarmlens", "flask", "chdb", "clickhouse_connect", "rotel")


def _probe(python: Path, cwd: Path, mods=SERVICE) -> dict[str, str]:
    """Which modules the venv has, seen from outside the source tree."""
    code = ("import importlib.util, json, sys\n"
            "def found(m):\n"
            "    try:\n"
            "        return bool(importlib.util.find_spec(m))\n"
            "    except ImportError:  # its parent package is missing\n"
            "        return False\n"
            f"mods = {list(mods)!r}\n"
            "print(json.dumps({m: found(m) for m in mods}))\n")
    import json

    return json.loads(_run([str(python), "-c", code], cwd=cwd).strip().splitlines()[-1])


def test_the_app_venv_has_the_instrumentation_and_nothing_of_the_service(wheels, tmp_path):
    python = _venv(tmp_path / "app")
    _run([str(python), *PIP, "-c", str(ROOT / "constraints.txt"),
          str(wheels["opentelemetry_instrumentation_openai_swarm"]) + "[instruments]"])
    found = _probe(python, tmp_path)
    assert found == {"opentelemetry.instrumentation.openai_swarm": True, "swarmlens": False, "flask": False,
                     "chdb": False, "clickhouse_connect": False, "rotel": False}
    assert not (tmp_path / "app" / "bin" / "swarmlens").exists()
    # The instrumentation works there: it instruments Swarm through its entry point, as
    # `opentelemetry-instrument` finds it, and its spans carry the version of the wheel.
    code = ("from importlib.metadata import entry_points, version\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "(ep,) = [e for e in entry_points(group='opentelemetry_instrumentor') if e.name == 'openai_swarm']\n"
            "inst = ep.load()()\n"
            "inst.instrument(tracer_provider=TracerProvider())\n"
            "import swarm.core\n"
            "assert hasattr(swarm.core.Swarm.run, '__wrapped__')\n"
            "print(version('opentelemetry-instrumentation-openai-swarm'))\n")
    assert _run([str(python), "-c", code], cwd=tmp_path).strip().splitlines()[-1] == "0.1.0"


def test_swarmlens_up_runs_from_the_wheel_and_stores_demo_tasks(wheels, tmp_path):
    python = _venv(tmp_path / "server")
    _run([str(python), *PIP, "-c", str(ROOT / "constraints.txt"), str(wheels["swarmlens"])])
    found = _probe(python, tmp_path, SERVICE + ("swarm", "openai", "tqdm"))
    assert found == {"swarmlens": True, "flask": True, "chdb": True, "clickhouse_connect": True, "rotel": True,
                     "opentelemetry.instrumentation.openai_swarm": False, "swarm": False, "openai": False,
                     "tqdm": False}
    swarmlens = str(tmp_path / "server" / "bin" / "swarmlens")
    for argv in (["demo"], ["up", "--demo", "--data-dir", str(tmp_path / "data")]):
        res = subprocess.run([swarmlens, *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env=_clean_env())
        assert res.returncode == 2 and res.stdout == "", (argv, res.stdout, res.stderr)
        assert res.stderr.count("\n") == 1 and "pip install 'swarmlens[demo]'" in res.stderr, res.stderr
    # the demo extra, with the instrumentation's wheel (not on the index)
    _run([str(python), *PIP, "-c", str(ROOT / "constraints.txt"),
          str(wheels["opentelemetry_instrumentation_openai_swarm"]), str(wheels["swarmlens"]) + "[demo]"])
    assert all(_probe(python, tmp_path, ("swarm", "openai", "opentelemetry.instrumentation.openai_swarm")).values())
    # The package, not a source tree, is what runs: its files live in the venv.
    where = _run([str(python), "-c", "import swarmlens; print(swarmlens.__file__)"], cwd=tmp_path)
    assert str(tmp_path / "server") in where and str(ROOT) not in where

    ports = {name: free_port() for name in ("ch", "grpc", "http", "app")}
    log = tmp_path / "up.out"
    argv = [swarmlens, "up", "--demo", "--demo-interval", "0.3",
            "--data-dir", str(tmp_path / "data"), "--clickhouse-port", str(ports["ch"]),
            "--otlp-grpc-port", str(ports["grpc"]), "--otlp-http-port", str(ports["http"]),
            "--port", str(ports["app"])]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "swarmlens is up" in log.read_text() or proc.poll() is not None, 180,
                   what="`swarmlens up` from the wheel to report it is up")
        assert proc.poll() is None, log.read_text()
        import clickhouse_connect

        # the endpoint's generated password, kept in the data directory
        password = (tmp_path / "data" / "clickhouse-password").read_text().strip()
        client = clickhouse_connect.get_client(dsn=f"http://default:{password}@127.0.0.1:{ports['ch']}")
        try:
            tasks = wait_until(lambda: client.query(
                "SELECT count(), countIf(user_id != '' AND input_tokens > 0) FROM swarmlens.tasks FINAL"
            ).result_rows[0][1], 90, what="a demo task stored through the OTLP receiver")
            assert tasks >= 1
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped ingest" in log.read_text()  # the OTLP receiver ran from the wheel too
