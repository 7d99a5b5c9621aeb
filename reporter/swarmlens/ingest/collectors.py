"""The collector launchers: rotel, the OTLP collector the single-machine stack runs with
``SWARMLENS_COLLECTOR=rotel`` instead of ``swarmlens ingest``; both feed ClickHouse, so both live here.

rotel (PyPI ``rotel``) ships its Rust binary ``rotel-agent`` inside the wheel. ``swarmlens up``
starts it with the settings of ``collector_config/rotel.env``: that file is the one place the
stack's rotel settings live. Its ``${SWARMLENS_*}`` placeholders are expanded from the swarmlens
configuration, so ports, the ClickHouse URL and credentials follow the README's settings::

    from swarmlens.ingest.collectors import Rotel
    rotel = Rotel.from_config(config, log_path="rotel.log").start()   # waits for the OTLP ports
    rotel.otlp_http_url     # http://127.0.0.1:4318
    rotel.stop()            # SIGTERM: rotel exports what it holds, then exits

rotel does not create tables: run the migrations before starting it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Mapping

from swarmlens.errors import SwarmlensError

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


class CollectorError(SwarmlensError):
    """rotel cannot be started: a missing binary or settings file, or it exited or did not listen."""


def rotel_binary() -> str:
    """Path of the ``rotel-agent`` binary inside the installed ``rotel`` wheel."""
    try:
        import rotel
    except ImportError as exc:
        raise CollectorError("rotel is not installed (pip install swarmlens)") from exc
    path = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")
    if not os.access(path, os.X_OK):
        raise CollectorError(f"rotel-agent not found or not executable at {path}")
    return path


def default_settings_path() -> Path:
    """The rotel.env shipped in the package (``swarmlens.collector_config``, built from the source
    tree's collector_config/), so a wheel install finds it as a checkout does."""
    from importlib.resources import files

    return Path(str(files("swarmlens.collector_config").joinpath("rotel.env")))


def settings_path(config: Mapping) -> Path:
    return Path(config.get("SWARMLENS_ROTEL_CONFIG") or default_settings_path())


def read_settings(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The (name, raw value) pairs of a rotel env file: ``NAME=value`` lines, ``#`` comments.

    Values are taken literally (no quotes, no shell expansion) except for ``${NAME}`` placeholders,
    which ``expand`` fills in.
    """
    pairs: list[tuple[str, str]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CollectorError(f"cannot read rotel settings {path}: {exc.strerror}") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise CollectorError(f"{path}:{n}: expected NAME=value, got {line[:80]!r}")
        pairs.append((m.group(1), m.group(2).strip()))
    return pairs


def placeholders(path: str | os.PathLike) -> set[str]:
    """Names of the ``${...}`` placeholders a rotel env file uses."""
    return {name for _, value in read_settings(path) for name in _PLACEHOLDER.findall(value)}


def expand(pairs: list[tuple[str, str]], values: Mapping[str, object]) -> dict[str, str]:
    """Fills the placeholders from ``values``; a variable that expands to nothing is left out, so
    rotel keeps its own default (an empty password means none)."""
    env: dict[str, str] = {}
    for name, raw in pairs:
        def sub(m: re.Match) -> str:
            if m.group(1) not in values:
                raise CollectorError(f"rotel setting {name} uses ${{{m.group(1)}}}, which is not a swarmlens setting")
            v = values[m.group(1)]
            return "" if v is None else str(v)

        value = _PLACEHOLDER.sub(sub, raw)
        if value != "":
            env[name] = value
    return env


def _wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CollectorError(f"rotel-agent exited with status {proc.returncode} before listening on {host}:{port}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise CollectorError(f"rotel-agent did not listen on {host}:{port} within {timeout:.0f} s")


def _connect_host(host: str) -> str:
    # A wildcard bind is reached on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


class Rotel:
    """One ``rotel-agent start`` child process."""

    def __init__(self, env: Mapping[str, str], log: IO | str | None = None, cwd: str | None = None):
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self._log_file: IO | None = None

    @classmethod
    def from_config(cls, config: Mapping, log: IO | str | None = None, settings: str | os.PathLike | None = None,
                    **overrides: object) -> "Rotel":
        """A launcher for the settings file, expanded with ``config`` (and ``overrides`` of single
        SWARMLENS_* values, e.g. ports picked at runtime)."""
        values = dict(config)
        values.update(overrides)
        path = settings or settings_path(values)
        env = expand(read_settings(path), values)
        pid_file = env.get("ROTEL_PID_FILE")
        if pid_file:
            os.makedirs(os.path.dirname(pid_file) or ".", exist_ok=True)
        return cls(env, log=log, cwd=os.path.dirname(pid_file) if pid_file else None)

    def _endpoint(self, key: str) -> tuple[str, int]:
        value = self.env.get(key) or ""
        host, _, port = value.rpartition(":")
        if not port.isdigit():
            raise CollectorError(f"{key} must be HOST:PORT, not {value!r}")
        return host.strip("[]"), int(port)

    @property
    def grpc_endpoint(self) -> tuple[str, int]:
        return self._endpoint("ROTEL_OTLP_GRPC_ENDPOINT")

    @property
    def http_endpoint(self) -> tuple[str, int]:
        return self._endpoint("ROTEL_OTLP_HTTP_ENDPOINT")

    @property
    def otlp_http_url(self) -> str:
        host, port = self.http_endpoint
        host = _connect_host(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def otlp_grpc_url(self) -> str:
        host, port = self.grpc_endpoint
        host = _connect_host(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 20.0, new_session: bool = True, preexec_fn=None) -> "Rotel":
        """Starts rotel-agent and waits until both OTLP receivers accept connections."""
        binary = rotel_binary()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env.update(self.env)
        out = self.log
        if isinstance(out, str):
            self._log_file = out = open(out, "ab")
        self.proc = subprocess.Popen([binary, "start"], env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT if out is not None else None,
                                     start_new_session=new_session, preexec_fn=preexec_fn)
        try:
            for host, port in (self.http_endpoint, self.grpc_endpoint):
                _wait_port(_connect_host(host), port, self.proc, timeout)
        except CollectorError:
            self.stop(grace=2)
            raise
        return self

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, then up to ``grace`` seconds for rotel to export what it holds; SIGKILL after."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return proc.returncode

    def __enter__(self) -> "Rotel":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
