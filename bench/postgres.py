"""A throwaway PostgreSQL server for the benchmarks: Debian's package, installed if missing,
initialised in a temporary directory and started on a free loopback port, stopped at the end.

    from bench.postgres import PostgresServer
    with PostgresServer() as pg:          # raises PostgresUnavailable when it cannot run here
        conn = psycopg.connect(pg.dsn)

As root (CI containers, this machine) the server runs as the ``postgres`` user through
``runuser``; as an ordinary user it runs as that user. The cluster is for benchmarking only:
``fsync`` is off (it changes load time, not query time), the memory settings are sized for a
small machine and stated in ``SETTINGS`` so the report can quote them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from swarmlens_testing.ports import free_port  # test helper

# Sized for the 2-core, 23 GB machine of docs/benchmarks.md; printed with the results.
SETTINGS = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_parallel_workers_per_gather": "2",
    "random_page_cost": "1.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "4GB",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started on this machine; the caller reports it as such."""


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def install() -> str:
    """The directory of the server binaries, installing Debian's ``postgresql`` package if needed."""
    bindir = _bindir()
    if bindir:
        return bindir
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable("PostgreSQL is not installed and apt-get is not usable (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sys.stderr.write("installing Debian's postgresql package (apt-get) ...\n")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(cmd)} failed: {r.stderr.strip()[-300:]}")
    bindir = _bindir()
    if not bindir:
        raise PostgresUnavailable("apt-get installed postgresql but no server binary was found")
    return bindir


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 and a socket there."""

    def __init__(self, base_dir: str | None = None):
        self.bindir = ""
        self.base = base_dir
        self.port = 0
        self.version = ""
        self._as_root = os.geteuid() == 0
        self._own_base = base_dir is None

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        if self._as_root:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start(self) -> "PostgresServer":
        self.bindir = install()
        if self.base is None:
            self.base = tempfile.mkdtemp(prefix="swarmlens-pg-")
        os.makedirs(self.base, exist_ok=True)
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self.data = os.path.join(self.base, "data")
        r = self._run([f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8", "--locale=C.UTF-8"])
        if r.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {r.stdout.strip()[-500:]}")
        self.port = free_port()
        opts = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        opts += f" -c listen_addresses=127.0.0.1 -p {self.port} -k {self.base}"
        r = self._run([f"{self.bindir}/pg_ctl", "-D", self.data, "-l", os.path.join(self.base, "log"),
                       "-o", opts, "-w", "-t", "60", "start"])
        if r.returncode != 0:
            log = open(os.path.join(self.base, "log")).read()[-800:] if os.path.exists(os.path.join(self.base, "log")) else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {r.stdout.strip()[-300:]} {log}")
        self.version = subprocess.run([f"{self.bindir}/postgres", "--version"], stdout=subprocess.PIPE,
                                      text=True).stdout.strip()
        return self

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def stop(self) -> None:
        if self.port and self.data and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run([f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"])
        if self._own_base and self.base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # smoke test: start, print the version, stop
    with PostgresServer() as pg:
        import psycopg

        with psycopg.connect(pg.dsn) as conn:
            print(pg.version, "|", conn.execute("SELECT version()").fetchone()[0])
    print("stopped")
