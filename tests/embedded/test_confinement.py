"""The endpoint's confinement, layer by layer, against an escape corpus.

Each case tries to reach the host: read a canary file outside the data directory, connect to a
listener on loopback, or write into a directory outside the data directory. The corpus runs
against `swarmlens clickhouse` processes (the kernel layer restricts the whole process, so it is
never tried inside the test process) with the layers switched on and off:

* every layer: 0 escapes;
* the kernel and engine layers alone (no statement check): 0 escapes, the guarantee below the
  application;
* the statement check alone: the Values and loop() cases escape, which shows that the corpus sees
  an escape when one happens and that the layers below hold by themselves.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from swarmlens_testing.polling import wait_until
from swarmlens_testing.ports import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock is Linux's")


def _landlock_abi() -> int:
    from swarmlens.embedded.confine import landlock_abi

    return landlock_abi()


class Listener:
    """A TCP listener on loopback that counts the connections it is offered."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            c.close()

    def close(self):
        self._stop = True
        self.sock.close()


class Host:
    """What the corpus tries to reach: a canary file, a listener, a directory to write into."""

    def __init__(self, tmp):
        self.secret = secrets.token_hex(16)
        self.canary = str(tmp / "canary.txt")
        with open(self.canary, "w") as f:
            f.write(self.secret + "\n")
        self.outside = tmp / "outside"
        self.outside.mkdir()
        self.listener = Listener()

    def writes(self) -> list[str]:
        return sorted(os.listdir(self.outside))


def start_endpoint(tmp, layers: str, password: str):
    port = free_port()
    data = tmp / f"data-{layers.replace(',', '-') or 'none'}"
    env = dict(os.environ, SWARMLENS_DATA_DIR=str(data), SWARMLENS_CLICKHOUSE_PASSWORD=password,
               SWARMLENS_CLICKHOUSE_CONFINEMENT=layers, PYTHONUNBUFFERED="1")
    log_path = tmp / f"endpoint-{layers.replace(',', '-') or 'none'}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"endpoint exited: {log_path.read_text()}")
        try:
            return requests.get(url + "/ping", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, 60, what="the endpoint answering /ping")
    return proc, url


def corpus(h: Host) -> list[tuple[str, str, dict]]:
    """(name, kind, request) cases; kind says what an escape would be: read, connect or write."""
    c, p, out = h.canary, h.listener.port, h.outside
    url = f"http://127.0.0.1:{p}/x"
    cases: list[tuple[str, str, dict]] = []

    def add(name, kind, sql=None, method="POST", params=None, files=None, body=None):
        cases.append((name, kind, {"sql": sql, "method": method, "params": params or {}, "files": files,
                                   "body": body}))

    # reading files, by the routes the issue measured
    add("values_format_fn", "read", f"SELECT * FROM format(Values, 's String', '(file(''{c}''))')", method="GET")
    add("insert_values", "read", f"INSERT INTO sink VALUES (file('{c}'))")
    add("insert_format_values_body", "read", body=f"INSERT INTO sink FORMAT Values (file('{c}'))")
    add("values_param", "read", "SELECT * FROM format(Values, 's String', {v:String})",
        params={"param_v": f"(file('{c}'))"})
    add("jsoneachrow_default", "read", f"SELECT * FROM format(JSONEachRow, 's String DEFAULT file(''{c}'')', '{{}}')")
    add("external_values", "read", "SELECT * FROM ext", params={"ext_structure": "s String", "ext_format": "Values"},
        files={"ext": ("ext", f"(file('{c}'))".encode())})
    add("multipart_query_field", "read", None, files={"query": (None, f"SELECT * FROM format(Values, 's String', "
                                                                      f"'(file(''{c}''))')".encode())})
    add("file_table_fn", "read", f"SELECT * FROM file('{c}', LineAsString)")
    add("file_scalar", "read", f"SELECT file('{c}')")
    add("result_filter_url", "read", "SELECT 1", method="GET",
        params={"additional_result_filter": f"toUInt8(file('{c}')) = 1"})
    add("result_filter_settings", "read", f"SELECT 1 SETTINGS additional_result_filter = 'toUInt8(file(''{c}'')) = 1'")
    add("table_filters_url", "read", "SELECT * FROM sink", method="GET",
        params={"additional_table_filters": f"{{'sink': 'toUInt8(file(''{c}'')) = 1'}}"})
    add("from_infile", "read", f"INSERT INTO sink FROM INFILE '{c}' FORMAT LineAsString")
    add("environ", "read", "SELECT * FROM file('/proc/self/environ', RawBLOB)")
    # writing outside the data directory
    add("rocksdb_path", "write", f"CREATE TABLE rk_{secrets.token_hex(3)} (k String, v String) "
                                 f"ENGINE = EmbeddedRocksDB(0, '{out}/rocks') PRIMARY KEY k")
    add("into_outfile", "write", f"SELECT 1 INTO OUTFILE '{out}/outfile.txt'")
    add("insert_into_function_file", "write", f"INSERT INTO FUNCTION file('{out}/fn.tsv', TSV, 's String') VALUES ('x')")
    add("file_engine", "write", f"CREATE TABLE fe_{secrets.token_hex(3)} (s String) ENGINE = File(TSV, '{out}/fe.tsv')")
    # connections
    add("loop_url", "connect", f"SELECT * FROM loop(url('{url}', CSV, 'x String')) LIMIT 1")
    add("url", "connect", f"SELECT * FROM url('{url}', CSV, 'x String')")
    add("describe_loop_url", "connect", f"DESCRIBE TABLE loop(url('{url}', CSV, 'x String'))")
    add("view_url", "connect", f"SELECT * FROM view(SELECT * FROM url('{url}', CSV, 'x String'))")
    add("subquery_url", "connect", f"SELECT * FROM (SELECT * FROM url('{url}', CSV, 'x String'))")
    add("insert_select_url", "connect", f"INSERT INTO sink SELECT * FROM url('{url}', CSV, 'x String')")
    add("remote", "connect", f"SELECT * FROM remote('127.0.0.1:{p}', system.one)")
    add("loop_remote", "connect", f"SELECT * FROM loop(remote('127.0.0.1:{p}', system.one)) LIMIT 1")
    add("mysql", "connect", f"SELECT * FROM mysql('127.0.0.1:{p}', 'd', 't', 'u', 'p')")
    add("postgresql", "connect", f"SELECT * FROM postgresql('127.0.0.1:{p}', 'd', 't', 'u', 'p')")
    add("url_engine", "connect", f"CREATE TABLE ue_{secrets.token_hex(3)} (x String) ENGINE = URL('{url}', CSV)")
    add("named_collection", "connect", f"CREATE NAMED COLLECTION nc_{secrets.token_hex(3)} AS url = '{url}'")
    return cases


def generated_cases(h: Host, table_functions: list[str]) -> list[tuple[str, str, dict]]:
    """Every table function the engine lists, pointed at the canary and at the listener, plain and
    nested in loop(), view(), merge()'s neighbours and a subquery."""
    url = f"http://127.0.0.1:{h.listener.port}/x"
    cases = []
    shapes = ("SELECT * FROM {t} LIMIT 1", "SELECT * FROM (SELECT * FROM {t}) LIMIT 1",
              "SELECT * FROM view(SELECT * FROM {t}) LIMIT 1", "INSERT INTO sink SELECT * FROM {t} LIMIT 1")
    for i, fn in enumerate(table_functions):
        # each target once per function, the nestings taken in turn so that every nesting meets
        # every kind of target across the list
        for j, arg in enumerate((f"'{h.canary}'", f"'{url}'", f"'127.0.0.1:{h.listener.port}'")):
            shape = shapes[(i + j) % len(shapes)]
            cases.append((f"gen_{fn}_{j}", "any", {"sql": shape.format(t=f"{fn}({arg})"), "method": "POST",
                                                    "params": {}, "files": None, "body": None}))
    return cases


def run_case(url: str, password: str, req: dict, timeout: float = 20.0) -> str:
    params = {"max_execution_time": "5", **req["params"]}
    if req["sql"] is not None and req["files"] is None and req["method"] == "GET":
        params["query"] = req["sql"]
    try:
        if req["method"] == "GET":
            r = requests.get(url, params=params, auth=("default", password), timeout=timeout)
        elif req["files"] is not None:
            if req["sql"] is not None:
                params["query"] = req["sql"]
            r = requests.post(url, params=params, files=req["files"], auth=("default", password), timeout=timeout)
        else:
            body = req["body"] if req["body"] is not None else req["sql"]
            r = requests.post(url, params=params, data=body.encode(), auth=("default", password), timeout=timeout)
        return r.text
    except requests.RequestException as exc:
        return f"<no answer: {type(exc).__name__}>"


def _stored_canary(url: str, password: str, h: Host) -> bool:
    """Whether an INSERT stored the canary's content in the sink table (then emptied for the next case)."""
    r = requests.post(url, params={"param_s": h.secret}, auth=("default", password), timeout=30,
                      data=b"SELECT count() FROM sink WHERE position(s, {s:String}) > 0")
    r.raise_for_status()
    if int(r.text) == 0:
        return False
    requests.post(url, data=b"TRUNCATE TABLE sink", auth=("default", password), timeout=30).raise_for_status()
    return True


def escapes(url: str, password: str, h: Host, cases) -> list[str]:
    found = []
    for name, kind, req in cases:
        before_conn, before_writes = h.listener.connections, h.writes()
        text = run_case(url, password, req)
        inserts = "INSERT" in ((req["sql"] or "") + (req["body"] or "")).upper()
        if h.secret in text or (inserts and _stored_canary(url, password, h)):
            found.append(f"{name}: read the canary")
        if h.listener.connections > before_conn:
            found.append(f"{name}: connected to the listener")
        if h.writes() != before_writes:
            found.append(f"{name}: wrote {sorted(set(h.writes()) - set(before_writes))}")
    return found


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = Host(tmp_path_factory.mktemp("host"))
    yield h
    h.listener.close()


def _stack(tmp_path_factory, layers):
    tmp = tmp_path_factory.mktemp("confined")
    password = secrets.token_hex(8)
    proc, url = start_endpoint(tmp, layers, password)
    requests.post(url, data=b"CREATE TABLE IF NOT EXISTS sink (s String) ENGINE = MergeTree ORDER BY s",
                  auth=("default", password), timeout=30).raise_for_status()
    return proc, url, password, tmp


def _end(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


needs_landlock = pytest.mark.skipif(_landlock_abi() < 4, reason="needs Landlock ABI 4 or later (TCP rules)")


@needs_landlock
@pytest.mark.slow
@pytest.mark.parametrize("layers", ["kernel,engine,statements", "kernel,engine", "kernel"])
def test_the_corpus_finds_no_way_out(tmp_path_factory, host, layers):
    proc, url, password, _ = _stack(tmp_path_factory, layers)
    try:
        names = requests.post(url, data=b"SELECT name FROM system.table_functions ORDER BY name",
                              auth=("default", password), timeout=30).text.split()
        assert "url" in names and "file" in names
        # loop() over a source that fails at once spins inside the engine, deaf to KILL and
        # max_execution_time (docs/embedded-clickhouse.md), so it runs last
        cases = corpus(host)
        if layers == "kernel":
            # every table function the engine lists, against the weakest configuration: a layer added
            # on top only refuses more
            cases += generated_cases(host, [n for n in names if n != "loop"])
            assert len(cases) > 250
        cases.sort(key=lambda c: c[0].startswith(("loop", "describe_loop")))
        assert escapes(url, password, host, cases) == []
    finally:
        _end(proc)
    assert host.listener.connections == 0 and host.writes() == []


@needs_landlock
@pytest.mark.slow
@pytest.mark.parametrize("layers, case, what", [
    ("statements", "values_format_fn", "read the canary"),
    ("statements", "insert_format_values_body", "read the canary"),
    ("engine", "loop_url", "connected to the listener"),
    ("engine", "url", "connected to the listener"),
])
def test_a_layer_alone_lets_through_what_the_others_stop(tmp_path_factory, host, layers, case, what):
    """The corpus sees an escape when there is one: the statement check alone misses what the engine
    evaluates outside any syntax tree (Values input), and the engine layer alone does not stop
    table functions. So each layer below the statement check is tested with the others off."""
    proc, url, password, _ = _stack(tmp_path_factory, layers)
    try:
        picked = [c for c in corpus(host) if c[0] == case]
        before = host.listener.connections
        found = escapes(url, password, host, picked)
        assert f"{case}: {what}" in found, found
    finally:
        _end(proc)
        host.listener.connections = before
        for name in host.writes():
            os.remove(host.outside / name)


@needs_landlock
def test_the_kernel_layer_is_reported_and_the_secrets_stay_out_of_reach(tmp_path_factory, host):
    proc, url, password, tmp = _stack(tmp_path_factory, "kernel,engine,statements")
    try:
        data = tmp / "data-kernel-engine-statements"
        import json

        doc = json.loads((data / "clickhouse" / "swarmlens-confinement.json").read_text())
        assert doc["kernel"]["kernel"] == "landlock" and doc["kernel"]["landlock_abi"] >= 4
        assert doc["layers"] == ["engine", "kernel", "statements"]
    finally:
        _end(proc)
    proc, url, password, tmp = _stack(tmp_path_factory, "kernel")
    try:
        secret = tmp / "data-kernel" / "clickhouse-password"  # where `up` keeps the endpoint's password
        secret.write_text(password)
        for path in ("/proc/self/environ", str(secret), "/etc/hostname", host.canary):
            r = requests.post(url, data=f"SELECT * FROM file('{path}', RawBLOB)".encode(),
                              auth=("default", password), timeout=30)
            assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "497", (path, r.text)
            assert password not in r.text
    finally:
        _end(proc)


@needs_landlock
def test_a_local_dictionary_loads_under_the_kernel_layer(tmp_path_factory):
    """A dictionary over a table of its own (SOURCE(CLICKHOUSE(TABLE ... DB ...))) is local, which
    the engine decides by resolving `localhost`: the kernel layer lets it read /etc/hosts."""
    proc, url, password, _ = _stack(tmp_path_factory, "kernel,engine,statements")
    try:
        def q(sql):
            r = requests.post(url, data=sql.encode(), auth=("default", password), timeout=60)
            assert r.status_code == 200, (sql, r.text)
            return r.text.strip()

        q("CREATE TABLE dsrc (id UInt64, value String) ENGINE = MergeTree ORDER BY id")
        q("INSERT INTO dsrc VALUES (1, 'user_1')")
        q("CREATE DICTIONARY dct (id UInt64, value String) PRIMARY KEY id "
          "SOURCE(CLICKHOUSE(TABLE 'dsrc' DB 'default')) LAYOUT(FLAT()) LIFETIME(MIN 0 MAX 10)")
        q("SYSTEM RELOAD DICTIONARY dct")
        assert q("SELECT dictGet('dct', 'value', toUInt64(1))") == "user_1"
    finally:
        _end(proc)
