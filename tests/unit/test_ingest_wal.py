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


# -- damage, disk full, free-space guard ---------------------------------------------------------

def _sealed_segment(tmp_path, payloads):
    wal = WriteAheadLog(str(tmp_path))
    for p in payloads:
        wal.append(p)
    wal.seal()
    (segment,) = wal.sealed()
    wal.close()
    return segment


def test_a_damaged_record_costs_only_itself_flip_garbage_and_a_cut_short_end(tmp_path):
    from swarmlens.ingest.wal import HEADER_BYTES

    payloads = [f"record {n} ".encode() * 20 for n in range(4)]
    segment = _sealed_segment(tmp_path, payloads)
    data = bytearray(open(segment.path, "rb").read())
    rec = HEADER_BYTES + len(payloads[0])
    data[rec + 30:rec + 34] = b"\xff\xff\xff\xff"          # 4 bytes of record 2's payload flipped
    data[2 * rec + 5] ^= 0xFF                              # record 3's header (its length field)
    data[3 * rec:3 * rec] = b"garbage \xf0SWL garbage"     # garbage, with a false magic, before record 4
    open(segment.path, "wb").write(bytes(data))
    got = WriteAheadLog.read(segment)
    assert got.records == [payloads[0], payloads[3]]
    assert [d.records for d in got.damaged] == [1, 1] and got.missing == 2
    assert got.damaged[0].reason == "payload checksum mismatch"
    # The header of record 3 and the garbage after it are one range: from record 3 to record 4.
    assert (got.damaged[1].start, got.damaged[1].end) == (2 * rec, 3 * rec + len(b"garbage \xf0SWL garbage"))

    cut = bytes(data[:3 * rec + 10])                       # truncated inside the garbage: no seal, no record 4
    open(segment.path, "wb").write(cut)
    got = WriteAheadLog.read(segment)
    assert got.records == [payloads[0]] and got.sealed is None and got.damaged[-1].end == len(cut)


def test_garbage_appended_after_the_seal_is_damage_and_the_records_stay(tmp_path):
    segment = _sealed_segment(tmp_path, [b"a" * 100, b"b" * 100])
    with open(segment.path, "ab") as f:
        f.write(os.urandom(300))
    got = WriteAheadLog.read(segment)
    assert got.records == [b"a" * 100, b"b" * 100] and got.sealed == (2, got.sealed[1])
    assert sum(d.end - d.start for d in got.damaged) == 300


def _failing_writes(monkeypatch, after_bytes: int):
    """os.write that accepts ``after_bytes`` in total, writes part of the next record, then ENOSPC."""
    import errno

    from swarmlens.ingest import wal as wal_mod

    real = wal_mod._write_all
    budget = {"left": after_bytes}

    def write_all(fd, data):
        if budget["left"] >= len(data):
            budget["left"] -= len(data)
            return real(fd, data)
        os.write(fd, bytes(data[:max(1, budget["left"])]))  # a torn record reaches the file
        budget["left"] = 0
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_mod, "_write_all", write_all)
    return budget


def test_a_failed_write_is_cut_back_refused_and_the_log_recovers(tmp_path, monkeypatch):
    from swarmlens.ingest.wal import HEADER_BYTES, WalUnavailable

    wal = WriteAheadLog(str(tmp_path))
    budget = _failing_writes(monkeypatch, after_bytes=2 * (HEADER_BYTES + 50))
    wal.append(b"1" * 50)
    wal.append(b"2" * 50)
    with pytest.raises(WalUnavailable):
        wal.append(b"3" * 50)
    assert os.path.getsize(wal._path(wal._seq)) == 2 * (HEADER_BYTES + 50)  # the torn bytes are gone
    with pytest.raises(WalUnavailable):
        wal.append(b"4" * 50)
    budget["left"] = 1 << 20  # space returns
    wal.append(b"5" * 50)
    wal.seal()
    got = [WriteAheadLog.read(s) for s in wal.sealed()]
    assert [r for g in got for r in g.records] == [b"1" * 50, b"2" * 50, b"5" * 50]
    assert not any(g.damaged for g in got) and wal.write_failures == 2


def test_below_the_free_space_reserve_nothing_is_written(tmp_path):
    from swarmlens.ingest.wal import WalUnavailable

    wal = WriteAheadLog(str(tmp_path))
    wal.min_free_bytes = wal.free_bytes() + (1 << 30)
    with pytest.raises(WalUnavailable, match="bytes free"):
        wal.append(b"x")
    assert os.path.getsize(wal._path(wal._seq)) == 0 and wal.refused_low_space == 1
    wal.min_free_bytes = 1
    wal.append(b"x")


def test_a_failed_fsync_refuses_every_record_it_should_have_covered(tmp_path, monkeypatch):
    import errno

    from swarmlens.ingest import wal as wal_mod
    from swarmlens.ingest.wal import WalUnavailable

    wal = WriteAheadLog(str(tmp_path))
    wal.append(b"kept")
    real = wal_mod.os.fdatasync
    calls = {"n": 0}

    def fdatasync(fd):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(wal_mod.os, "fdatasync", fdatasync)
    with pytest.raises(WalUnavailable):
        wal.append(b"lost")
    wal.append(b"after")
    wal.seal()
    assert [r for s in wal.sealed() for r in WriteAheadLog.records(s)] == [b"kept", b"after"]


def test_a_segment_of_the_layout_before_is_still_read(tmp_path):
    import struct
    import zlib

    WriteAheadLog(str(tmp_path)).close()
    body = b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in (b"old1", b"old2"))
    (tmp_path / f"{3:020d}-{'a' * 16}.wal").write_bytes(body)
    wal = WriteAheadLog(str(tmp_path))
    (segment,) = wal.sealed()
    assert not segment.framed and WriteAheadLog.records(segment) == [b"old1", b"old2"]


# -- one bad value costs nothing else --------------------------------------------------------------

def _nested_request(depth: int, good_tasks: int = 10):
    """A request of ``good_tasks`` spans and one span whose attribute nests ``depth`` maps deep."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    spans = []
    for n in range(good_tasks + 1):
        span = Span(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"s{n}", start_time_unix_nano=1)
        span.attributes.add(key="enduser.id").value.string_value = f"user-{n}"
        spans.append(span.SerializeToString())
    # Built from the inside out, as bytes: protobuf's own objects refuse to serialize >100 levels.
    inner = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth - 1):
        kv = b"\x0a\x01k" + b"\x12" + _len(inner) + inner                   # KeyValue{key="k", value=inner}
        kvlist = b"\x0a" + _len(kv) + kv                                    # KeyValueList{values=[kv]}
        inner = b"\x32" + _len(kvlist) + kvlist                             # AnyValue{kvlist_value}
    deep_kv = b"\x0a\x04deep\x12" + _len(inner) + inner
    spans[0] += b"\x4a" + _len(deep_kv) + deep_kv                            # Span.attributes (field 9)
    scope = b"".join(b"\x12" + _len(sp) + sp for sp in spans)                # ScopeSpans.spans (field 2)
    rs = b"\x12" + _len(scope) + scope                                       # ResourceSpans.scope_spans
    return b"\x0a" + _len(rs) + rs                                           # the request's resource_spans


def _len(b: bytes) -> bytes:
    out = bytearray()
    otlp._put_varint(out, len(b))
    return bytes(out)


def _as_json(depth: int, good_tasks: int = 10) -> bytes:
    import json

    value = '{"stringValue": "bottom"}'
    for _ in range(depth - 1):  # as text: json.dumps itself stops at about 1,000 levels
        value = '{"kvlistValue": {"values": [{"key": "k", "value": ' + value + '}]}}'
    spans = []
    for n in range(good_tasks + 1):
        attrs = [json.dumps({"key": "enduser.id", "value": {"stringValue": f"user-{n}"}})]
        if n == 0:
            attrs.append('{"key": "deep", "value": ' + value + '}')
        spans.append('{"traceId": "%s", "spanId": "%s", "name": "s%d", "startTimeUnixNano": "1", "attributes": [%s]}'
                     % (os.urandom(16).hex(), os.urandom(8).hex(), n, ", ".join(attrs)))
    return ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + ", ".join(spans) + ']}]}]}').encode()


def _depth_of(av) -> int:
    kind = av.WhichOneof("value")
    if kind == "kvlist_value":
        return 1 + max((_depth_of(kv.value) for kv in av.kvlist_value.values), default=0)
    if kind == "array_value":
        return 1 + max((_depth_of(v) for v in av.array_value.values), default=0)
    return 1


@pytest.mark.parametrize("depth", [120, 2000])
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_deeply_nested_value_costs_only_itself(depth, encoding):
    if encoding == "protobuf":
        body = _nested_request(depth)
        decoded = otlp.decode(body)
    else:
        decoded = otlp.decode(_as_json(depth), "application/json")
    spans = decoded.request.resource_spans[0].scope_spans[0].spans
    assert decoded.spans == 11 and [s.attributes[0].value.string_value for s in spans] == \
        [f"user-{n}" for n in range(11)]
    deep = spans[0].attributes[1]
    assert deep.key == "deep" and _depth_of(deep.value) == otlp.MAX_VALUE_DEPTH
    assert decoded.repairs["value_too_deep"] == 1
    assert otlp.TOO_DEEP in otlp.value_text(deep.value)
    answer = decoded.response().partial_success
    assert answer.rejected_spans == 0 and "nested deeper than 16 levels" in answer.error_message
    # What goes to the log parses back (under protobuf's own limit) and gives its rows.
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    again = ExportTraceServiceRequest.FromString(decoded.request.SerializeToString())
    assert len(otlp.to_rows(again)) == 11


def test_a_value_at_the_limit_is_kept_whole():
    body = _nested_request(otlp.MAX_VALUE_DEPTH - 1)
    decoded = otlp.decode(body)
    assert not +decoded.repairs and not decoded.response().partial_success.error_message
    assert _depth_of(decoded.request.resource_spans[0].scope_spans[0].spans[0].attributes[1].value) == \
        otlp.MAX_VALUE_DEPTH - 1


def test_too_many_elements_and_attributes_and_a_too_long_string_are_cut_not_refused(monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    monkeypatch.setattr(otlp, "MAX_VALUE_BYTES", 100)
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    arr = span.attributes.add(key="many").value.array_value
    for n in range(otlp.MAX_VALUE_ITEMS + 5):
        arr.values.add().int_value = n
    span.attributes.add(key="long").value.string_value = "é" * 300
    for n in range(otlp.MAX_ATTRIBUTES):
        span.attributes.add(key=f"a{n}").value.int_value = n
    decoded = otlp.decode(req.SerializeToString())
    s = decoded.request.resource_spans[0].scope_spans[0].spans[0]
    assert decoded.spans == 1 and len(s.attributes) == otlp.MAX_ATTRIBUTES
    assert len(s.attributes[0].value.array_value.values) == otlp.MAX_VALUE_ITEMS
    assert s.attributes[1].value.string_value == "é" * 50
    assert (decoded.repairs["value_items_dropped"], decoded.repairs["attributes_dropped"],
            decoded.repairs["value_too_long"]) == (5, 2, 1)
