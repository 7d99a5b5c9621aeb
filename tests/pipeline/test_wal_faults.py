"""The receiver's write-ahead log where real disks break: a damaged log costs only its damaged
records (kept in quarantine, counted), a full disk refuses with 503 and loses nothing acknowledged,
and a backlog goes in as batches whose crash is repeated with the same token."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
import uuid

import pytest



def _request(run: str, tasks: int) -> bytes:
    """`tasks` root spans, one per user ``run-N``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for n in range(tasks):
        s = ss.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="invoke_workflow swarm", kind=1,
                         start_time_unix_nano=now, end_time_unix_nano=now + 2_000_000)
        s.attributes.extend([KeyValue(key="enduser.id", value=AnyValue(string_value=f"{run}-{n}")),
                             KeyValue(key="swarm.task.input", value=AnyValue(string_value="x" * 200))])
    return req.SerializeToString()


def _log(ing, body: bytes) -> None:
    from swarmlens.ingest import server

    ing.wal.append(hashlib.blake2b(body, digest_size=server.DIGEST_BYTES).digest() + body)


def _post(port: int, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def _stored_users(ch_client, cfg, run: str) -> set[str]:
    rows = ch_client.query("SELECT DISTINCT SpanAttributes['enduser.id'] FROM {otel:Identifier}.otel_traces "
                           "WHERE startsWith(SpanAttributes['enduser.id'], {p:String})",
                           parameters={"otel": cfg.SWARMLENS_OTEL_DATABASE, "p": run}).result_rows
    return {r[0] for r in rows}


def _span_copies(ch_client, cfg, run: str) -> tuple[int, int]:
    return ch_client.query("SELECT count(), uniqExact(TraceId, SpanId) FROM {otel:Identifier}.otel_traces "
                           "WHERE startsWith(SpanAttributes['enduser.id'], {p:String})",
                           parameters={"otel": cfg.SWARMLENS_OTEL_DATABASE, "p": run}).result_rows[0]


def test_a_damaged_log_costs_only_its_damaged_records_which_are_quarantined_and_counted(
        migrated, ch_client, pl, tmp_path):
    from swarmlens.ingest import server
    from swarmlens.ingest.wal import HEADER_BYTES

    run = f"damage-{uuid.uuid4().hex[:8]}"
    stopped = server.Ingest(migrated, str(tmp_path / "ingest"))  # a receiver that then stopped
    bodies = {}
    for seg in "abc":
        for n in range(4):
            bodies[f"{seg}{n}"] = _request(f"{run}{seg}{n}", 3)
            _log(stopped, bodies[f"{seg}{n}"])
        stopped.wal.seal()
    a, b, c = stopped.wal.sealed()
    stopped.wal.close()
    size = HEADER_BYTES + server.DIGEST_BYTES + len(bodies["a0"])  # every request has the same size
    # a: 4 bytes flipped in record 2 of 4; b: truncated inside record 3; c: garbage appended inside and after.
    data = bytearray(open(a.path, "rb").read())
    data[size + 100:size + 104] = bytes(x ^ 0xFF for x in data[size + 100:size + 104])
    open(a.path, "wb").write(bytes(data))
    with open(b.path, "r+b") as f:
        f.truncate(2 * size + 50)
    data = bytearray(open(c.path, "rb").read())
    data[size:size] = os.urandom(333)
    open(c.path, "wb").write(bytes(data) + os.urandom(77))

    ing = server.Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        pl.wait_until(lambda: ing.status()["backlog_segments"] == 0, 60, what="the damaged log inserted")
        intact = {"a0", "a2", "a3", "b0", "b1", "c0", "c1", "c2", "c3"}
        want = {f"{run}{k}-{n}" for k in intact for n in range(3)}
        pl.wait_until(lambda: _stored_users(ch_client, migrated, run) == want, 30,
                      what=f"every intact record ({sorted(want ^ _stored_users(ch_client, migrated, run))})")
        q = ing.status()["quarantine"]
        # a1 (payload), b2 (cut short), the garbage inside c and after its seal.
        assert q["records"] == 4 and q["segments_cut_short"] == 1, q
        assert q["bytes"] == size + 50 + 333 + 77
        whys = [json.load(open(os.path.join(q["directory"], n))) for n in sorted(os.listdir(q["directory"]))
                if n.endswith(".why")]
        assert {w["reason"] for w in whys} >= {"payload checksum mismatch"}
        assert sum(os.path.getsize(os.path.join(q["directory"], n)) for n in os.listdir(q["directory"])
                   if n.endswith(".bin")) == q["bytes"]
        metrics = _get(ing.http_port, "/metrics")
        assert "swarmlens_ingest_wal_quarantined_records 4" in metrics
        assert f"swarmlens_ingest_wal_quarantined_bytes {q['bytes']}" in metrics
    finally:
        ing.stop()
    # Counted once: a restart neither quarantines the same bytes again nor loses the count.
    again = server.Ingest(migrated, str(tmp_path / "ingest"))
    assert again.status()["quarantine"]["records"] == 4
    again.wal.close()


def test_a_batch_cut_off_by_a_crash_goes_again_with_its_token_and_is_stored_once(migrated, ch_client, pl, tmp_path):
    from swarmlens.ingest import server
    from swarmlens.store.client import connect

    run = f"batch-{uuid.uuid4().hex[:8]}"
    ing = server.Ingest(migrated, str(tmp_path / "ingest"))
    for n in range(6):
        _log(ing, _request(f"{run}{n}", 2))
        ing.wal.seal()
    pending = ing.wal.sealed()
    ing.inserter._first_alone = False
    batch, token = ing.inserter._next_batch(pending)
    assert len(batch) == 6 and ing.inserter._read_inflight()["token"] == token
    client = connect(migrated)
    real_remove = ing.wal.remove_many
    try:
        def crash(segments):
            raise KeyboardInterrupt("killed after the insert committed, before the log was emptied")

        ing.wal.remove_many = crash
        with pytest.raises(KeyboardInterrupt):
            ing.inserter._insert_batch(client, batch, token)
    finally:
        client.close()
        ing.wal.remove_many = real_remove
        ing.wal.close()
    assert _span_copies(ch_client, migrated, run) == (12, 12)
    # The next start finds inflight.json: the same six segments, the same token, dropped as a repeat.
    back = server.Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1)
    assert back.inserter._next_batch(back.wal.sealed()) == (batch, token)
    back.start("127.0.0.1", 0, 0)
    try:
        pl.wait_until(lambda: back.status()["backlog_segments"] == 0, 30, what="the batch repeated")
    finally:
        back.stop()
    assert _span_copies(ch_client, migrated, run) == (12, 12)
    assert back.inserter._read_inflight() is None


def test_a_crash_while_a_committed_batch_was_being_deleted_deletes_the_rest(migrated, ch_client, tmp_path):
    from swarmlens.ingest import server
    from swarmlens.store.client import connect

    run = f"half-{uuid.uuid4().hex[:8]}"
    ing = server.Ingest(migrated, str(tmp_path / "ingest"))
    for n in range(4):
        _log(ing, _request(f"{run}{n}", 2))
        ing.wal.seal()
    ing.inserter._first_alone = False
    batch, token = ing.inserter._next_batch(ing.wal.sealed())
    client = connect(migrated)
    real_remove = ing.wal.remove_many
    try:
        ing.wal.remove_many = lambda segments: (real_remove(segments[:2]), (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ing.inserter._insert_batch(client, batch, token)
    finally:
        client.close()
        ing.wal.close()
    back = server.Ingest(migrated, str(tmp_path / "ingest"))
    assert len(back.wal.sealed()) == 2 and back.inserter._next_batch(back.wal.sealed()) is None
    assert back.wal.sealed() == [] and _span_copies(ch_client, migrated, run) == (8, 8)
    back.wal.close()


def _mount_tmpfs(path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_refuses_with_503_loses_nothing_acknowledged_and_recovers(migrated, ch_client, pl, tmp_path,
                                                                           monkeypatch):
    """A sender keeps sending while the log's filesystem fills (a 3 MiB tmpfs when running as root,
    otherwise writes that fail with ENOSPC past a byte budget), then space returns."""
    from swarmlens.ingest import server, wal as wal_mod
    from swarmlens.ingest.state import PAUSE_FILE

    run = f"full-{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "ingest"
    on_tmpfs = _mount_tmpfs(directory, "3m")
    budget = {"left": None}
    if not on_tmpfs:
        import errno

        real = wal_mod._write_all

        def write_all(fd, data):
            if budget["left"] is not None:
                if budget["left"] < len(data):
                    os.write(fd, bytes(data[:max(1, budget["left"])]))
                    budget["left"] = 0
                    raise OSError(errno.ENOSPC, "No space left on device")
                budget["left"] -= len(data)
            return real(fd, data)

        monkeypatch.setattr(wal_mod, "_write_all", write_all)
    pause = os.path.join(str(directory), PAUSE_FILE)
    ing = server.Ingest(migrated, str(directory), batch_seconds=0.1, min_free_bytes=0).start("127.0.0.1", 0, 0)
    sent: dict[str, int] = {}
    stop = threading.Event()
    refused = []

    def sender():
        n = 0
        while not stop.is_set():
            prefix = f"{run}r{n}"
            status, headers = _post(ing.http_port, _request(prefix, 8))
            sent[prefix] = status
            if status == 503:
                refused.append(headers.get("Retry-After"))
            n += 1

    try:
        # Inserts held back (a ClickHouse that is behind), so the log grows until the disk is full.
        with open(pause, "w") as f:
            f.write(f"{os.getpid()}\n")
        if not on_tmpfs:
            budget["left"] = 3 << 20
        t = threading.Thread(target=sender)
        t.start()
        pl.wait_until(lambda: len(refused) >= 5, 60, what="503s from a full disk")
        assert ing.status()["wal_write_failures"] >= 1 and set(refused) == {"5"}
        os.unlink(pause)  # the backlog drains: space returns
        budget["left"] = None
        # recovered: requests acknowledged again (the sender keeps sending, so the log is never empty
        # for long on a busy machine; it drains once the sender stops)
        pl.wait_until(lambda: list(sent.values())[-5:] == [200] * 5, 120, what="200s again once space returned")
        stop.set()
        t.join(30)
        pl.wait_until(lambda: ing.status()["backlog_segments"] == 0, 120, what="the log emptied")
    finally:
        stop.set()
        ing.stop()
        if on_tmpfs:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)
    acked = {p for p, s in sent.items() if s == 200}
    assert {p for p, s in sent.items() if s not in (200, 503)} == set()
    want = {f"{p}-{n}" for p in acked for n in range(8)}
    stored = _stored_users(ch_client, migrated, run)
    assert want <= stored, f"{len(want - stored)} acknowledged spans lost"
    count, distinct = _span_copies(ch_client, migrated, run)
    assert count == distinct, f"{count - distinct} duplicated"
    assert stored <= {f"{p}-{n}" for p in sent for n in range(8)}
    assert len(acked) >= 10 and len(refused) >= 5


def test_below_the_free_space_reserve_requests_get_503_before_anything_is_written(migrated, tmp_path):
    from swarmlens.ingest import server

    ing = server.Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        ing.wal.min_free_bytes = ing.wal.free_bytes() + (1 << 40)
        status, headers = _post(ing.http_port, _request("reserve", 2))
        assert status == 503 and headers.get("Retry-After") == "5"
        assert ing.status()["wal_refused_low_space"] == 1 and ing.wal.backlog_bytes() == 0
        ing.wal.min_free_bytes = 0
        assert _post(ing.http_port, _request("reserve", 2))[0] == 200
    finally:
        ing.stop()
