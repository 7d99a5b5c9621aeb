"""`swarmlens up`: the whole single-machine stack as one process tree.

Started in this order, each waited for before the next:

1. the embedded ClickHouse (``swarmlens clickhouse``) as a child process: chDB holds one data
   directory per process, so the engine gets a process of its own; ready when ``/ping`` answers;
2. the migrations (``swarmlens db migrate``), run here;
3. the OTLP receiver, ``swarmlens ingest`` (crash-safe: it acknowledges only what its write-ahead
   log holds on disk; see ``swarmlens.ingest``), or rotel with ``collector_config/rotel.env`` when
   SWARMLENS_COLLECTOR=rotel;
4. the reporter under gunicorn (``swarmlens.app:create_app()``), configured through the
   environment;
5. with ``--demo``, ``swarmlens demo --forever`` sending demo traffic to the receiver like any app.

Every child runs in a process group of its own (so a terminal's Ctrl-C reaches only this
process, which then stops the children in order) and gets SIGTERM if this process dies
(``PR_SET_PDEATHSIG``). Ctrl-C or SIGTERM stops them in reverse order: demo, reporter, the receiver
(which inserts what its log holds), ClickHouse last (which finishes the inserts in flight). Whatever
is left of a child's process group after that is killed, so nothing survives.

A child that dies on its own is restarted after a pause that doubles with each crash (0.5 s up
to 30 s); after 5 crashes of one child within 60 s the stack gives up, stops everything and exits 1.
After an unclean end (a crash of ClickHouse, or of `up` itself), the rollups are compared with
their details and repaired (``swarmlens db check --repair``) while the receiver holds its inserts
back. What runs and what is behind is in ``DATA_DIR/up-state.json`` (`swarmlens status`).

Every port is checked before anything starts; a taken one is named in the error. Children log
to ``DATA_DIR/logs/*.log``.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from swarmlens import config as config_mod

DEFAULT_WSGI_APP = "swarmlens.app:create_app()"
ADMIN_USERNAME = "admin"
CREDENTIALS_FILE = "admin-credentials"
STATE_FILE = "up-state.json"
# Restart policy of crashed children.
RESTART_FIRST_PAUSE = 0.5
RESTART_MAX_PAUSE = 30.0
CRASH_WINDOW = 60.0
CRASHES_TO_GIVE_UP = 5

_PR_SET_PDEATHSIG = 1


class StackError(Exception):
    """The stack cannot start: a taken port, a child that failed, a locked data directory."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where ClickHouse data, the ingest log, logs and the admin credentials live "
                                      "(default: SWARMLENS_DATA_DIR, ~/.local/share/swarmlens)")
    p.add_argument("--clickhouse-port", type=int, metavar="PORT",
                   help="embedded ClickHouse HTTP port (default: SWARMLENS_CLICKHOUSE_LISTEN_PORT, 8123)")
    p.add_argument("--otlp-host", metavar="HOST", help="address of the OTLP receivers (default: SWARMLENS_OTLP_HOST)")
    p.add_argument("--otlp-grpc-port", type=int, metavar="PORT",
                   help="OTLP/gRPC port (default: SWARMLENS_OTLP_GRPC_PORT, 4317)")
    p.add_argument("--otlp-http-port", type=int, metavar="PORT",
                   help="OTLP/HTTP port (default: SWARMLENS_OTLP_HTTP_PORT, 4318)")
    p.add_argument("--host", metavar="HOST", help="address of the reporter (default: SWARMLENS_REPORTER_HOST)")
    p.add_argument("--port", type=int, metavar="PORT", help="port of the reporter (default: SWARMLENS_REPORTER_PORT, 8000)")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: SWARMLENS_REPORTER_WORKERS)")
    p.add_argument("--demo", action="store_true", help="keep demo traffic flowing (swarmlens demo --forever)")
    p.add_argument("--demo-interval", type=float, default=2.0, metavar="SECONDS",
                   help="pause between demo tasks (default: 2)")
    p.add_argument("--demo-backfill-days", type=int, default=90, metavar="DAYS",
                   help="on an empty database, --demo first backfills this many days of history (default: 90; 0: none)")
    p.add_argument("--demo-backfill-tasks", type=int, default=600, metavar="N",
                   help="tasks of that backfill (default: 600)")
    p.add_argument("--demo-llm-port", type=int, default=0, metavar="PORT",
                   help="port of the demo's scripted LLM on 127.0.0.1 (default: a free port)")


# ---------------------------------------------------------------------------------------------
# Children


def _die_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the parent dies, whatever killed it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@dataclass
class Child:
    """One child process, the leader of its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: str
    stop_grace: float = 30.0
    ready: Callable[[], bool] | None = field(default=None, repr=False)  # serving again (after a restart)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _log: object = field(default=None, repr=False)
    restarts: int = 0
    crashes: list[float] = field(default_factory=list)  # monotonic times of recent crashes
    restart_at: float | None = None                      # when a crashed child is due to start again
    last_exit: int | None = None
    started_at: float = 0.0

    def start(self) -> "Child":
        if self._log is not None:
            self._log.close()
        self.started_at = time.time()
        self._log = open(self.log_path, "ab", buffering=0)
        self._log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the leader and the time it needs to stop cleanly; then nothing of its group survives."""
        if self.proc is None:
            return None
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop within {self.stop_grace:.0f} s; killing it", flush=True)
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Grandchildren (gunicorn workers, ...) normally leave with their leader; make sure of it.
        deadline = time.monotonic() + 5
        sig = signal.SIGTERM
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                sig = signal.SIGKILL
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# Checks


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_ports(ports: list[tuple[str, str, int]]) -> dict[str, int]:
    """Binds each (label, host, port) for a moment, the way the servers will (SO_REUSEADDR), and
    raises StackError naming every port that is taken. Port 0 picks a free port; returns the ports."""
    chosen: dict[str, int] = {}
    taken: list[str] = []
    seen: dict[int, str] = {}
    for label, host, port in ports:
        if port and port in seen:
            taken.append(f"port {port} is given both to {seen[port]} and to {label}")
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
                taken.append(f"{label} port {port} on {host} {why}")
                continue
            chosen[label] = s.getsockname()[1]
            seen[chosen[label]] = label
    if taken:
        raise StackError("; ".join(taken) + ". Free the port or choose another (see `swarmlens up --help`).")
    return chosen


def _http_ok(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of a GET (any status counts as serving), None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait(child: Child, ready: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise StackError(f"{child.name} exited with status {child.proc.returncode} before {what}; "
                             f"its log ({child.log_path}) ends with:\n{child.log_tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise StackError(f"{child.name} was not {what} within {timeout:.0f} s; its log ({child.log_path}) ends with:\n"
                     f"{child.log_tail()}")


# ---------------------------------------------------------------------------------------------
# The ops admin account


def ensure_admin(config: Mapping, data_dir: str) -> tuple[str, str]:
    """Makes sure the ops admin account exists; returns (path of the credentials file, note).

    On the first start a random password is generated and written with the username to
    ``DATA_DIR/admin-credentials`` (mode 0600, before the account exists, so a crash in between
    loses nothing), and the account is created through the reporter's accounts
    (``swarmlens.auth``, as ``swarmlens users add-ops`` does). Later starts leave an existing account
    alone: a password changed since is kept, and the file then no longer holds it.
    """
    from swarmlens import auth
    from swarmlens.store.client import connect

    path = os.path.join(data_dir, CREDENTIALS_FILE)
    if os.path.exists(path):
        username, password = _read_credentials(path)
    else:
        username, password = ADMIN_USERNAME, secrets.token_urlsafe(18)
        config_mod.write_private_file(
            path, f"# swarmlens ops admin, generated by `swarmlens up` on {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  f"username={username}\npassword={password}\n")
    client = connect(config)
    try:
        if auth.ops_account(client, config, username) is not None:
            return path, f"ops admin {username!r} (created on an earlier start)"
        auth.set_ops_password(client, config, username, password, create=True)
        return path, f"ops admin {username!r} created"
    finally:
        client.close()


def _read_credentials(path: str) -> tuple[str, str]:
    values = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key.strip()] = value.strip()
    if not values.get("username") or not values.get("password"):
        raise StackError(f"{path} has no username=/password= lines; delete it to generate new credentials")
    return values["username"], values["password"]


# ---------------------------------------------------------------------------------------------
# The stack


class _Stop(Exception):
    """Raised in the main thread by SIGTERM / SIGINT."""


class Stack:
    """The children of `swarmlens up`, started in order and stopped in reverse."""

    def __init__(self, cfg: config_mod.Config, data_dir: str, demo: bool = False, demo_interval: float = 2.0,
                 demo_backfill_days: int = 0, demo_backfill_tasks: int = 0,
                 say: Callable[[str], None] = print):
        self.cfg = cfg
        self.data_dir = os.path.abspath(os.path.expanduser(data_dir))
        self.demo = demo
        self.demo_interval = demo_interval
        self.demo_backfill_days = demo_backfill_days
        self.demo_backfill_tasks = demo_backfill_tasks
        self.demo_llm_port = 0
        self.say = say
        self.children: list[Child] = []
        self.urls: dict[str, str] = {}
        self._lock_fd: int | None = None
        self._previous_end_unclean = False
        self.events: list[str] = []
        self.service_users: dict[str, tuple[str, str]] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _log(self, name: str) -> str:
        return os.path.join(self.data_dir, "logs", f"{name}.log")

    def _env(self, **extra: object) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in self.cfg.items():
            env[name] = "" if value is None else str(value)
        env.update({k: str(v) for k, v in extra.items()})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _env_as(self, component: str) -> dict[str, str]:
        """The environment of a child that signs in to ClickHouse as the component's own user."""
        user, password = self.service_users[component]
        return self._env(SWARMLENS_CLICKHOUSE_USER=user, SWARMLENS_CLICKHOUSE_PASSWORD=password)

    def _cfg_as(self, cfg: config_mod.Config, component: str) -> config_mod.Config:
        user, password = self.service_users[component]
        return config_mod.Config({**cfg, "SWARMLENS_CLICKHOUSE_USER": user, "SWARMLENS_CLICKHOUSE_PASSWORD": password})

    def _child(self, name: str, argv: list[str], env: dict[str, str], grace: float = 30.0) -> Child:
        child = Child(name, argv, env, self._log(name), stop_grace=grace).start()
        self.children.append(child)
        return child

    def _lock(self) -> None:
        os.makedirs(os.path.join(self.data_dir, "logs"), exist_ok=True)
        fd = os.open(os.path.join(self.data_dir, "up.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StackError(f"another `swarmlens up` is running on {self.data_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        previous = read_state(self.data_dir)
        # We hold the lock, so an earlier `up` that left "running" behind did not stop cleanly.
        self._previous_end_unclean = bool(previous) and previous.get("state") != "stopped"

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.cfg
        self._lock()
        ch_host = cfg.SWARMLENS_CLICKHOUSE_LISTEN_HOST
        otlp_host = cfg.SWARMLENS_OTLP_HOST
        app_host = cfg.SWARMLENS_REPORTER_HOST
        ports = check_ports([
            ("ClickHouse HTTP (--clickhouse-port)", ch_host, cfg.SWARMLENS_CLICKHOUSE_LISTEN_PORT),
            ("OTLP/gRPC (--otlp-grpc-port)", otlp_host, cfg.SWARMLENS_OTLP_GRPC_PORT),
            ("OTLP/HTTP (--otlp-http-port)", otlp_host, cfg.SWARMLENS_OTLP_HTTP_PORT),
            ("reporter (--port)", app_host, cfg.SWARMLENS_REPORTER_PORT),
        ])
        ch_port, grpc_port, http_port, app_port = ports.values()
        host = _connect_host(ch_host)
        ch_url = f"http://[{host}]:{ch_port}" if ":" in host else f"http://{host}:{ch_port}"
        # The endpoint holds user data: it gets a password, generated on the first start and kept in
        # the data directory, which every child (and every later swarmlens command) reads.
        pw_path = config_mod.clickhouse_password_path(self.data_dir)
        if "SWARMLENS_CLICKHOUSE_PASSWORD" not in os.environ:
            cfg = config_mod.Config({**cfg, "SWARMLENS_CLICKHOUSE_PASSWORD": config_mod.clickhouse_password(self.data_dir)})
            self.ch_password_note = f"password in {pw_path}"
        else:
            self.ch_password_note = "password from $SWARMLENS_CLICKHOUSE_PASSWORD"
        cfg = self.cfg = config_mod.Config({**cfg, "SWARMLENS_CLICKHOUSE_LISTEN_PORT": ch_port,
                                            "SWARMLENS_CLICKHOUSE_URL": ch_url, "SWARMLENS_OTLP_GRPC_PORT": grpc_port,
                                            "SWARMLENS_OTLP_HTTP_PORT": http_port, "SWARMLENS_REPORTER_PORT": app_port,
                                            "SWARMLENS_DATA_DIR": self.data_dir})
        self.say(f"swarmlens up: data in {self.data_dir}, logs in {os.path.join(self.data_dir, 'logs')}")

        # 1. ClickHouse
        started = time.monotonic()
        ch = self._child("clickhouse", [sys.executable, "-m", "swarmlens.cli", "clickhouse",
                                        "--data-dir", os.path.join(self.data_dir, "clickhouse"),
                                        "--host", ch_host, "--port", str(ch_port)], self._env(), grace=60)
        _wait(ch, lambda: _http_ok(ch_url + "/ping") == 200, "answering /ping", timeout=120)
        ch.ready = lambda: _http_ok(ch_url + "/ping") == 200
        self.urls["clickhouse"] = ch_url
        self.say(f"  ClickHouse   {ch_url}  (embedded, {time.monotonic() - started:.1f} s; user "
                 f"{cfg.SWARMLENS_CLICKHOUSE_USER}, {self.ch_password_note})")
        if "SWARMLENS_CLICKHOUSE_PASSWORD" not in os.environ:
            self.say(f"               curl -u {cfg.SWARMLENS_CLICKHOUSE_USER}:\"$(cat {pw_path})\" "
                     f"'{ch_url}/?query=SELECT+1'")

        # 2. migrations
        from swarmlens.store.migrate import load_migrations, migrate_from_config

        started = time.monotonic()
        applied = migrate_from_config(cfg)
        self.say(f"  schema       up to date: {len(load_migrations())} migrations, {len(applied)} applied now "
                 f"({time.monotonic() - started:.1f} s)")
        # each component signs in as its own ClickHouse user, with only its role
        from swarmlens.store import dbusers
        from swarmlens.store.client import connect as ch_connect

        client = ch_connect(cfg)
        try:
            self.service_users = dbusers.ensure_service_users(client, self.data_dir)
        finally:
            client.close()
        self.say("  users        " + ", ".join(f"{component} as {user}" for component, (user, _)
                                                 in self.service_users.items())
                 + f" (passwords in {os.path.join(self.data_dir, 'clickhouse-users')})")

        # 3. the OTLP receiver
        otlp_connect = _connect_host(otlp_host)
        logged_before = self._receiver_last_seq()
        collector = self._start_collector(cfg, otlp_host, grpc_port, http_port)
        _wait(collector, lambda: _port_open(otlp_connect, http_port) and _port_open(otlp_connect, grpc_port),
              "listening for OTLP", timeout=30)
        if self._previous_end_unclean:
            # The log's segments from before go in first (a repeat of one cut off mid-insert fills in
            # the views it missed); what is still missing after that is the check's to repair.
            self._wait_receiver(lambda st: (st.get("oldest_pending_seq") or 1 << 62) > logged_before)
            self._check_rollups("the last run ended uncleanly")
        fmt = (lambda h, p: f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}")
        self.urls["otlp_http"] = fmt(otlp_connect, http_port)
        self.urls["otlp_grpc"] = fmt(otlp_connect, grpc_port)
        self.say(f"  OTLP/HTTP    {self.urls['otlp_http']}  ({self._collector_note(cfg)})")
        self.say(f"  OTLP/gRPC    {self.urls['otlp_grpc']}")

        # 4. admin account, then the reporter
        cred_path, note = ensure_admin(cfg, self.data_dir)
        app_connect = _connect_host(app_host)
        app_url = fmt(app_connect, app_port)
        bind = f"[{app_host}]:{app_port}" if ":" in app_host else f"{app_host}:{app_port}"
        app = self._child("reporter", [sys.executable, "-m", "gunicorn", "--bind", bind,
                                       "--workers", str(cfg.SWARMLENS_REPORTER_WORKERS),
                                       # Pages mostly wait on ClickHouse: threads (gthread) serve
                                       # them concurrently where sync workers queued every request.
                                       "--threads", str(max(1, cfg.SWARMLENS_REPORTER_THREADS)),
                                       "--graceful-timeout", "20", "--timeout", "120",
                                       # Browsers keep connections open between pages; with gunicorn's
                                       # 2 s a connection could be closed just as its next request
                                       # arrived (a reset the client sees; 0-3 a run of
                                       # bench/bench_load.py, none in 18 runs with 15 s).
                                       "--keep-alive", "15",
                                       "--access-logfile", "-", "--error-logfile", "-",
                                       DEFAULT_WSGI_APP], self._env_as("reporter"), grace=30)
        _wait(app, lambda: _http_ok(app_url + "/") is not None, "serving HTTP", timeout=60)
        self.urls["reporter"] = app_url
        workers = cfg.SWARMLENS_REPORTER_WORKERS
        self.say(f"  reporter     {app_url}  (gunicorn, {workers} worker{'s' if workers != 1 else ''} x "
                 f"{max(1, cfg.SWARMLENS_REPORTER_THREADS)} threads)")
        self.say(f"  admin        {note}; username and password in {cred_path} (mode 0600)")

        # 5. the notifier: quota alerts and the monthly reports (swarmlens.notify.scheduler)
        from swarmlens.notify.command import start_in_stack

        start_in_stack(self)
        import shlex

        other_dir = self.data_dir != os.path.abspath(os.path.expanduser(config_mod.load().SWARMLENS_DATA_DIR))
        self.say("  CLI          " + (f"SWARMLENS_DATA_DIR={shlex.quote(self.data_dir)} " if other_dir else "")
                 + f"swarmlens users list --clickhouse-url {ch_url}")

        # 6. demo traffic
        if self.demo:
            from swarmlens.demo.seed import seed_demo_configuration
            from swarmlens.store.client import connect

            client = connect(self.cfg)
            try:
                for line in seed_demo_configuration(client, self.cfg):
                    self.say(f"  demo config  {line} (change them with swarmlens prices / plans)")
            finally:
                client.close()
            argv = [sys.executable, "-m", "swarmlens.cli", "demo", "--forever", "--interval", str(self.demo_interval),
                    "--otlp-endpoint", self.urls["otlp_http"], "--no-progress"]
            if self.demo_backfill_days > 0 and self.demo_backfill_tasks > 0 and self._tasks_empty():
                argv += ["--backfill-days", str(self.demo_backfill_days), "--tasks", str(self.demo_backfill_tasks),
                         "--showcase"]
            if self.demo_llm_port:
                argv += ["--llm-port", str(self.demo_llm_port)]
            demo = self._child("demo", argv, self._env(OTEL_SERVICE_NAME="swarmlens-demo"), grace=20)
            time.sleep(0.5)
            if not demo.running():
                raise StackError(f"demo exited with status {demo.proc.returncode}; its log ends with:\n"
                                 f"{demo.log_tail()}")
            self.say(f"  demo         sending demo tasks every {self.demo_interval:g} s (log {demo.log_path})")
            # the same agents on the OpenAI Agents SDK, so that both frameworks show side by side
            agents_argv = [sys.executable, "-m", "swarmlens.cli", "demo-agents", "--forever", "--interval",
                           str(max(self.demo_interval * 3, 1.0)), "--otlp-endpoint", self.urls["otlp_http"]]
            try:
                import agents  # noqa: F401
            except ImportError:
                self.say("  demo         (the Agents SDK demo needs `pip install 'swarmlens[agents]'`)")
            else:
                agents_demo = self._child("demo-agents", agents_argv,
                                          self._env(OTEL_SERVICE_NAME="swarmlens-demo-agents"), grace=20)
                self.say(f"  demo         and Agents SDK tasks every {max(self.demo_interval * 3, 1.0):g} s "
                         f"(log {agents_demo.log_path})")
        self._write_state("running")
        self.say(f"swarmlens is up: open {app_url}  (apps send spans to OTEL_EXPORTER_OTLP_ENDPOINT="
                 f"{self.urls['otlp_http']}). Ctrl-C or SIGTERM stops everything.")

    def _tasks_empty(self) -> bool:
        from swarmlens.store.client import connect

        client = connect(self.cfg)
        try:
            rows = client.query("SELECT count() FROM {db:Identifier}.tasks",
                                parameters={"db": self.cfg.SWARMLENS_DATABASE}).result_rows
            return rows[0][0] == 0
        except Exception:
            return False
        finally:
            client.close()

    # -- run and stop ----------------------------------------------------------------------------
    def watch(self, poll: float = 0.2) -> int:
        """Supervises the children until a signal (returns 0) or until one crashes too often (returns 1).

        A child that exits on its own is started again after a pause that doubles with each recent
        crash; CRASHES_TO_GIVE_UP crashes within CRASH_WINDOW seconds stop the stack. After a restart
        of ClickHouse, the rollups are checked and repaired while the receiver holds inserts back.
        """
        last_state = 0.0
        while True:
            now = time.monotonic()
            for child in list(self.children):
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.restart_at = None
                        child.restarts += 1
                        child.start()
                        self._event(f"{child.name} restarted (restart {child.restarts}, pid {child.pid})")
                        if child.name == "clickhouse":
                            self._after_clickhouse_restart(child)
                    continue
                if child.running():
                    continue
                child.last_exit = child.proc.returncode
                child.stop()  # what is left of its process group (gunicorn workers holding the port)
                child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW] + [now]
                if len(child.crashes) >= CRASHES_TO_GIVE_UP:
                    self._event(f"{child.name} exited with status {child.last_exit}, its {len(child.crashes)}th crash "
                                f"within {CRASH_WINDOW:.0f} s; giving up and stopping. Its log ({child.log_path}) "
                                f"ends with:\n{child.log_tail()}")
                    self._write_state("giving up")
                    return 1
                pause = min(RESTART_FIRST_PAUSE * 2 ** (len(child.crashes) - 1), RESTART_MAX_PAUSE)
                child.restart_at = now + pause
                self._event(f"{child.name} exited with status {child.last_exit}; restarting in {pause:.1f} s "
                            f"(crash {len(child.crashes)} within {CRASH_WINDOW:.0f} s; log {child.log_path})")
            if now - last_state >= 1.0:
                self._write_state("running")
                last_state = now
            time.sleep(poll)

    def _event(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        self.events = (self.events + [stamped])[-50:]
        self.say(f"swarmlens up: {line}")
        try:
            with open(os.path.join(self.data_dir, "logs", "up.log"), "a", encoding="utf-8") as f:
                f.write(stamped + "\n")
        except OSError:
            pass

    def _after_clickhouse_restart(self, ch: Child) -> None:
        deadline = time.monotonic() + 120
        restarted = time.time()
        while time.monotonic() < deadline and ch.running():
            if ch.ready and ch.ready():
                # The insert that the crash cut off is repeated first (same token): only then check.
                self._wait_receiver(lambda st: not st.get("backlog_segments")
                                    or (st.get("last_insert_at") or 0) > restarted)
                self._check_rollups("ClickHouse restarted")
                return
            time.sleep(0.2)

    def _receiver_last_seq(self) -> int:
        """The number of the newest segment in the receiver's log (0 for none)."""
        wal = os.path.join(self.data_dir, "ingest", "wal")
        try:
            return max((int(n.split(".")[0]) for n in os.listdir(wal) if n.endswith(".wal")), default=0)
        except (OSError, ValueError):
            return 0

    def _wait_receiver(self, done: Callable[[dict], bool], timeout: float = 120) -> None:
        from swarmlens.ingest.state import read_status

        if self.cfg.get("SWARMLENS_COLLECTOR", "swarmlens") == "rotel":
            return
        directory = os.path.join(self.data_dir, "ingest")
        deadline = time.monotonic() + timeout
        started = time.time()
        while time.monotonic() < deadline:
            st = read_status(directory)
            if st and (st.get("updated_at") or 0) > started and done(st):
                return
            time.sleep(0.2)
        self._event(f"the receiver did not catch up within {timeout:.0f} s; checking the rollups anyway")

    def _check_rollups(self, why: str) -> None:
        """`db check --repair` while the receiver holds its inserts back (it keeps acknowledging)."""
        from swarmlens.ingest.state import inserts_paused
        from swarmlens.store.check import check
        from swarmlens.store.client import StoreError, connect

        started = time.monotonic()
        try:
            with inserts_paused(os.path.join(self.data_dir, "ingest")):
                client = connect(self.cfg)
                try:
                    findings = check(client, self.cfg, fix=True)
                finally:
                    client.close()
        except (StoreError, TimeoutError, OSError) as exc:
            self._event(f"rollup check after '{why}' failed: {exc}; run `swarmlens db check --repair`")
            return
        if findings:
            fixed = ", ".join(f"{f.table} {f.partition}" + ("" if f.repaired else " (still differs)") for f in findings)
            self._event(f"{why}: rollups compared with their details, {len(findings)} partition(s) repaired: {fixed} "
                        f"({time.monotonic() - started:.1f} s)")
        else:
            self.say(f"  rollups      equal to their details ({why}; {time.monotonic() - started:.1f} s)")

    # -- collector -------------------------------------------------------------------------------
    def _start_collector(self, cfg: config_mod.Config, host: str, grpc_port: int, http_port: int) -> Child:
        if cfg.get("SWARMLENS_COLLECTOR", "swarmlens") == "rotel":
            from swarmlens.ingest.collectors import Rotel

            rotel_env = Rotel.from_config(self._cfg_as(cfg, "ingest")).env
            env = {**{k: v for k, v in self._env_as("ingest").items() if not k.startswith("ROTEL_")}, **rotel_env}
            return self._child("rotel", [_rotel_binary(), "start"], env, grace=60)
        return self._child("ingest", [sys.executable, "-m", "swarmlens.cli", "ingest",
                                      "--data-dir", os.path.join(self.data_dir, "ingest"), "--host", host,
                                      "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
                           self._env_as("ingest"), grace=60)

    def _collector_note(self, cfg: config_mod.Config) -> str:
        if cfg.get("SWARMLENS_COLLECTOR", "swarmlens") == "rotel":
            from swarmlens.ingest.collectors import settings_path

            return f"rotel, settings {settings_path(cfg)}; not crash-safe"
        return f"swarmlens ingest, write-ahead log {os.path.join(self.data_dir, 'ingest', 'wal')}"

    # -- state -----------------------------------------------------------------------------------
    def _write_state(self, state: str) -> None:
        doc = {"state": state, "pid": os.getpid(), "updated_at": time.time(), "data_dir": self.data_dir,
               "urls": self.urls, "events": self.events[-20:],
               "children": [{"name": c.name, "pid": c.pid, "running": c.running(), "restarts": c.restarts,
                             "recent_crashes": len(c.crashes), "last_exit": c.last_exit,
                             "started_at": c.started_at, "restarting": c.restart_at is not None,
                             "log": c.log_path} for c in self.children]}
        path = os.path.join(self.data_dir, STATE_FILE)
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
            os.replace(path + ".tmp", path)
        except OSError:
            pass

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc is None:
                continue
            started = time.monotonic()
            rc = child.stop()
            self.say(f"  stopped {child.name} (status {rc}, {time.monotonic() - started:.1f} s)")
        if self._lock_fd is not None:
            self._write_state("stopped")
        self.children.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def pid_alive(pid) -> bool:
    """Whether a process with this id runs (one of another user's counts)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (ValueError, TypeError, OverflowError):
        return False


def running_clickhouse_url(data_dir: str) -> str | None:
    """The ClickHouse URL of the `swarmlens up` running on data_dir, if one runs."""
    state = read_state(data_dir)
    if state.get("state") == "stopped" or not pid_alive(state.get("pid")):
        return None
    return (state.get("urls") or {}).get("clickhouse")


def read_state(data_dir: str) -> dict:
    """What the last `swarmlens up` on this data directory wrote about itself ({} when nothing)."""
    try:
        with open(os.path.join(data_dir, STATE_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _rotel_binary() -> str:
    from swarmlens.ingest.collectors import rotel_binary

    return rotel_binary()


def run(args: argparse.Namespace) -> int:
    from swarmlens.ingest.collectors import CollectorError
    from swarmlens.store.client import StoreError

    try:
        cfg = config_mod.load({
            "SWARMLENS_DATA_DIR": args.data_dir, "SWARMLENS_CLICKHOUSE_LISTEN_PORT": args.clickhouse_port,
            "SWARMLENS_OTLP_HOST": args.otlp_host, "SWARMLENS_OTLP_GRPC_PORT": args.otlp_grpc_port,
            "SWARMLENS_OTLP_HTTP_PORT": args.otlp_http_port, "SWARMLENS_REPORTER_HOST": args.host,
            "SWARMLENS_REPORTER_PORT": args.port, "SWARMLENS_REPORTER_WORKERS": args.workers,
        })
    except (ValueError, KeyError) as exc:
        print(f"swarmlens up: {exc}", file=sys.stderr)
        return 2
    stack = Stack(cfg, cfg.SWARMLENS_DATA_DIR, demo=args.demo, demo_interval=args.demo_interval,
                  demo_backfill_days=args.demo_backfill_days, demo_backfill_tasks=args.demo_backfill_tasks,
                  say=lambda line: print(line, flush=True))
    stack.demo_llm_port = args.demo_llm_port

    def on_signal(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        stack.start()
        status = stack.watch()
    except _Stop as exc:
        print(f"swarmlens up: {exc}, stopping", flush=True)
    except (StackError, StoreError, CollectorError, OSError, ValueError) as exc:
        print(f"swarmlens up: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        # Further signals must not interrupt the orderly stop.
        for sig in previous:
            signal.signal(sig, lambda s, f: print("swarmlens up: still stopping...", flush=True))
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("swarmlens up: stopped" + ("" if status == 0 else f" (status {status})"), flush=True)
    return status
