"""The Stack: the children of `swarmlens up` started in order, watched, restarted after a crash
with backoff, stopped in reverse (the whole story is in the package's docstring)."""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
import time
from typing import Callable

from swarmlens import config as config_mod
from swarmlens.stack import StackError
from swarmlens.stack.admin import ensure_admin
from swarmlens.stack.children import Child, check_ports, connect_host, http_ok, port_open, wait_ready
from swarmlens.stack.state import read_state, write_state

DEFAULT_WSGI_APP = "swarmlens.app:create_app()"
# Restart policy of crashed children.
RESTART_FIRST_PAUSE = 0.5
RESTART_MAX_PAUSE = 30.0
CRASH_WINDOW = 60.0
CRASHES_TO_GIVE_UP = 5


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
        host = connect_host(ch_host)
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
        ch = self._child("clickhouse", [sys.executable, "-m", "swarmlens.commands", "clickhouse",
                                        "--data-dir", os.path.join(self.data_dir, "clickhouse"),
                                        "--host", ch_host, "--port", str(ch_port)], self._env(), grace=60)
        wait_ready(ch, lambda: http_ok(ch_url + "/ping") == 200, "answering /ping", timeout=120)
        ch.ready = lambda: http_ok(ch_url + "/ping") == 200
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
        otlp_connect = connect_host(otlp_host)
        logged_before = self._receiver_last_seq()
        collector = self._start_collector(cfg, otlp_host, grpc_port, http_port)
        wait_ready(collector, lambda: port_open(otlp_connect, http_port) and port_open(otlp_connect, grpc_port),
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
        app_connect = connect_host(app_host)
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
        wait_ready(app, lambda: http_ok(app_url + "/") is not None, "serving HTTP", timeout=60)
        self.urls["reporter"] = app_url
        workers = cfg.SWARMLENS_REPORTER_WORKERS
        self.say(f"  reporter     {app_url}  (gunicorn, {workers} worker{'s' if workers != 1 else ''} x "
                 f"{max(1, cfg.SWARMLENS_REPORTER_THREADS)} threads)")
        self.say(f"  admin        {note}; username and password in {cred_path} (mode 0600)")

        # 5. the notifier: quota alerts and the monthly reports (swarmlens.notify.scheduler)
        notifier = self._child("notifier", [sys.executable, "-m", "swarmlens.commands", "notify", "run"],
                               self._env_as("reporter"), grace=20)
        self.say(f"  notifier     quota alerts and monthly reports, checked every {cfg.SWARMLENS_NOTIFY_INTERVAL:g} s "
                 f"(channels: `swarmlens notify set` or /admin/quotas; log {notifier.log_path})")
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
            argv = [sys.executable, "-m", "swarmlens.commands", "demo", "--forever", "--interval", str(self.demo_interval),
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
            agents_argv = [sys.executable, "-m", "swarmlens.commands", "demo-agents", "--forever", "--interval",
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
            from swarmlens.ingest.collectors import Rotel, rotel_binary

            rotel_env = Rotel.from_config(self._cfg_as(cfg, "ingest")).env
            env = {**{k: v for k, v in self._env_as("ingest").items() if not k.startswith("ROTEL_")}, **rotel_env}
            return self._child("rotel", [rotel_binary(), "start"], env, grace=60)
        return self._child("ingest", [sys.executable, "-m", "swarmlens.commands", "ingest",
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
        write_state(self.data_dir, doc)

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
