"""The kernel layer of the endpoint's confinement: the process restricts itself with Landlock.

chDB runs in the endpoint's own process, so whatever the engine can be made to do (read a file
through an input format's expression, connect somewhere through a table function nested where
no syntax tree shows it, write a table's files to another directory) it does with the process's
rights. Landlock takes those rights away in the kernel, for the process and every thread it starts
after, whatever SQL, format or setting reaches the engine:

* files: read and write only in the engine's data directory (and the one directory an operator
  opened with SWARMLENS_CLICKHOUSE_USER_FILES_PATH); read only the code the process runs (Python,
  its packages, the engine's library, shared libraries, time zones) and the few /proc and /sys
  files the engine reads about itself; nothing else, not even the endpoint's own password file
  or /proc/self/environ;
* network: no TCP connect and no TCP bind (the listening socket is bound before the restriction);
* scope: no signals to processes outside the domain, no abstract UNIX sockets outside it.

A restriction covers the calling thread and the threads it starts later, so it is applied while
the process has one thread and before the engine is loaded; `confine` checks that.
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Files the engine reads about its own process and machine at start and while running (found with
# strace under a deny-all ruleset). /proc/self resolves to this process when the rule is added.
_PROC_FILES = ("/proc/self/maps", "/proc/self/auxv", "/proc/self/statm", "/proc/self/status",
               "/proc/self/cgroup", "/proc/self/mountinfo", "/proc/stat", "/proc/meminfo", "/proc/cpuinfo",
               "/proc/loadavg", "/proc/sys/vm/overcommit_memory", "/etc/ld.so.cache", "/etc/localtime",
               # a dictionary's CLICKHOUSE(TABLE ... DB ...) source is local when `localhost` resolves
               "/etc/hosts")
_SYS_DIRS = ("/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/kernel/mm/transparent_hugepage",
             "/sys/fs/cgroup")
_CODE_DIRS = ("/usr/lib", "/lib", "/lib64", "/usr/lib64", "/usr/share/zoneinfo")


@dataclass
class Confinement:
    """What the kernel layer did, for the start-up line, the log and `swarmlens status`."""

    enforced: bool
    abi: int
    detail: str
    writable: list[str] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"kernel": "landlock" if self.enforced else "none", "landlock_abi": self.abi,
                "detail": self.detail, "writable": self.writable}


def landlock_abi() -> int:
    try:
        import landlockpy
    except ImportError:
        return 0
    return landlockpy.abi_version()


def code_paths() -> list[str]:
    """Directories the process loads code from: the interpreter's, the installed packages', and the
    source folders of swarmlens itself (an editable install), never the working directory."""
    paths = set()
    for scheme_paths in (sysconfig.get_paths(), sysconfig.get_paths(vars={"base": sys.base_prefix,
                                                                          "platbase": sys.base_exec_prefix})):
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            if scheme_paths.get(key):
                paths.add(scheme_paths[key])
    import swarmlens

    for p in swarmlens.__path__:
        paths.add(p)
    try:  # the rotel settings ship as swarmlens.collector_config, which an editable install maps elsewhere
        import importlib.util

        spec = importlib.util.find_spec("swarmlens.collector_config")
        if spec and spec.submodule_search_locations:
            paths.update(spec.submodule_search_locations)
    except (ImportError, ValueError):
        pass
    paths.update(p for p in _CODE_DIRS)
    return sorted(p for p in paths if p and os.path.exists(p))


def confine(writable: list[str], readable: list[str] = ()) -> Confinement:
    """Restricts this process with Landlock. `writable` directories get every file right; code,
    `readable` and the engine's own /proc and /sys files are read-only; TCP bind and connect are
    denied. Returns what was done; raises RuntimeError when the process already runs other threads
    (they would stay unrestricted)."""
    abi = landlock_abi()
    if abi < 1:
        return Confinement(False, 0, "Landlock is not available in this kernel (Linux 5.13+ with landlock "
                                     "in the LSM list); only the engine and statement layers confine the endpoint")
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise RuntimeError(f"cannot confine a process that already runs {threads} threads: restrict it first")
    from landlockpy import AccessFS, Ruleset, fs_for_abi, net_for_abi, scope_for_abi

    every = fs_for_abi(abi)
    read_dir = AccessFS.READ_FILE | AccessFS.READ_DIR
    read_code = read_dir | AccessFS.EXECUTE
    done_writable, done_readable = [], []
    with Ruleset(handled_fs=every, handled_net=net_for_abi(abi), scoped=scope_for_abi(abi)) as rs:
        for p in writable:
            os.makedirs(p, exist_ok=True)
            rs.allow_path(p, every)
            done_writable.append(os.path.realpath(p))
        for p in code_paths():
            rs.allow_path(p, read_code)
        for p in readable:
            if os.path.exists(p):
                rs.allow_path(p, read_dir if os.path.isdir(p) else AccessFS.READ_FILE)
                done_readable.append(p)
        for p in _PROC_FILES:
            if os.path.exists(p):
                rs.allow_path(p, AccessFS.READ_FILE)
        for p in _SYS_DIRS:
            if os.path.exists(p):
                rs.allow_path(p, read_dir)
        for p in ("/dev/null", "/dev/zero"):
            if os.path.exists(p):
                rs.allow_path(p, AccessFS.READ_FILE | AccessFS.WRITE_FILE)
        for p in ("/dev/urandom", "/dev/random"):
            if os.path.exists(p):
                rs.allow_path(p, AccessFS.READ_FILE)
        rs.restrict()
    net = "TCP bind and connect denied" if net_for_abi(abi) else "network not restricted (Landlock ABI < 4)"
    detail = f"Landlock ABI {abi}: files only in {', '.join(done_writable)} (and code read-only); {net}"
    return Confinement(True, abi, detail, done_writable, done_readable)
