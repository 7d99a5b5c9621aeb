"""The receiver's write-ahead log and its repair of protobuf strings, without a server."""

from __future__ import annotations

import os
import threading

import pytest

from swarmlens.ingest import otlp
from swarmlens.ingest.wal import WalFull, WriteAheadLog


def test_records_survive_a_reopen_and_a_torn_tail_is_ignored(tmp_path):
    wal = WriteAheadLog(str(tmp_path))
    wal.append(b"one")
    wal.append(b"two")
    wal.seal()
    wal.append(b"three")
    # A crash mid-write: the next record's bytes only partly reached the file.
    with open(wal._path(wal._seq), "ab") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00")
    log_id = wal.id
    again = WriteAheadLog(str(tmp_path))  # no close: as after kill -9
    segments = again.sealed()
    assert [again.records(s) for s in segments] == [[b"one", b"two"], [b"three"]]
    assert again.id == log_id and again.token(segments[0]) != again.token(segments[1])
    again.remove(segments[0])
    assert [s.seq for s in WriteAheadLog(str(tmp_path)).sealed()][:1] == [segments[1].seq]


def test_no_two_segments_ever_share_a_token_across_clean_restarts(tmp_path):
    tokens = []
    for _ in range(3):
        wal = WriteAheadLog(str(tmp_path))
        for n in range(2):
            wal.append(f"record {n}".encode())
            wal.seal()
        for segment in wal.sealed():
            tokens.append(wal.token(segment))
            wal.remove(segment)  # inserted: the log is empty at the clean stop
        wal.close()
        assert os.listdir(tmp_path) == ["log-id"]
    assert len(set(tokens)) == len(tokens) == 6


def test_a_segment_of_the_earlier_file_naming_keeps_its_token(tmp_path):
    first = WriteAheadLog(str(tmp_path))
    first.close()
    old = tmp_path / f"{7:020d}.wal"
    old.write_bytes(b"")
    wal = WriteAheadLog(str(tmp_path))
    (segment,) = wal.sealed()
    assert (segment.seq, segment.run) == (7, "") and wal.token(segment) == f"swarmlens-wal-{wal.id}-7"
    wal.append(b"new")
    wal.seal()
    assert wal.sealed()[-1].seq == 8 and wal.token(wal.sealed()[-1]) == f"swarmlens-wal-{wal.id}-{wal.run}-8"


def test_concurrent_appends_all_land_once(tmp_path):
    wal = WriteAheadLog(str(tmp_path), segment_bytes=4096)
    payloads = [f"t{t}-{i}".encode() for t in range(8) for i in range(200)]

    def write(t):
        for i in range(200):
            wal.append(f"t{t}-{i}".encode())

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal.seal()
    got = [r for s in wal.sealed() for r in wal.records(s)]
    assert sorted(got) == sorted(payloads)
    assert len(wal.sealed()) > 1  # rolled over at the segment size


def test_a_full_log_refuses(tmp_path):
    wal = WriteAheadLog(str(tmp_path), max_bytes=100)
    wal.append(b"x" * 50)
    with pytest.raises(WalFull):
        wal.append(b"y" * 60)


def test_repair_utf8_fixes_nested_strings_and_keeps_everything_else():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8),
                                                                name="AAAA", start_time_unix_nano=5)
    kv = span.attributes.add(key="k")
    kv.value.array_value.values.add().string_value = "BBBB"
    body = req.SerializeToString().replace(b"AAAA", b"A\xc3(A").replace(b"BBBB", b"\xffBBB")
    decoded = otlp.decode(body)
    s = decoded.request.resource_spans[0].scope_spans[0].spans[0]
    assert (s.name, s.attributes[0].value.array_value.values[0].string_value) == ("A\ufffd(A", "\ufffdBBB")
    assert (s.trace_id, s.span_id, s.start_time_unix_nano) == (span.trace_id, span.span_id, 5)
    assert decoded.repairs["invalid_utf8"] == 2


def test_a_body_that_is_not_protobuf_is_a_bad_request():
    with pytest.raises(otlp.BadRequest):
        otlp.decode(b"\x0a\xff\xff\xff\xff\x0f garbage")
