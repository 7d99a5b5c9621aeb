"""`swarmlens ingest`, the receiver of `swarmlens up`: the same rows as rotel, every task of a Swarm
app, a bad value that costs nothing else, an unreadable body refused with 400, and a retried request
stored once."""

from __future__ import annotations

import http.client
import os
import time
import uuid

import pytest

from swarmlens import config as config_mod


@pytest.fixture()
def ingest(migrated, tmp_path):
    from swarmlens.ingest.server import Ingest

    ing = Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    yield ing
    ing.stop()


def _post(port: int, body: bytes, content_type: str = "application/x-protobuf", **headers) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type, **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _kv(key, **value):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    return KeyValue(key=key, value=AnyValue(**value))


def _every_kind_of_value(trace_ids: list[bytes], service: str):
    """A request with every attribute type, events, links and statuses."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", string_value=service), _kv("host.cores", int_value=2)])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "scope-x", "1.2.3"
    now = 1_764_300_000_123_456_789
    for n, trace in enumerate(trace_ids):
        s = ss.spans.add(trace_id=trace, span_id=bytes([n + 1]) * 8, parent_span_id=bytes([9]) * 8 if n else b"",
                         name=f"span {n}", kind=n % 6, start_time_unix_nano=now, end_time_unix_nano=now + 1_500_000,
                         trace_state="k=v")
        s.attributes.extend([
            _kv("s", string_value="text é"), _kv("i", int_value=-42), _kv("d", double_value=0.1 + n),
            _kv("big", double_value=1e21), _kv("whole", double_value=3.0), _kv("b", bool_value=bool(n % 2)),
            _kv("bytes", bytes_value=b"\x00\x01"),
            _kv("arr", array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=2),
                                                      AnyValue(bool_value=True)])),
            _kv("map", kvlist_value=KeyValueList(values=[_kv("x", int_value=1), _kv("y", string_value="z")]))])
        s.status.code, s.status.message = n % 3, "boom" if n % 3 == 2 else ""
        ev = s.events.add(time_unix_nano=now + 10, name="exception")
        ev.attributes.extend([_kv("exception.type", string_value="ValueError")])
        link = s.links.add(trace_id=trace, span_id=bytes([7]) * 8, trace_state="a=b")
        link.attributes.extend([_kv("why", string_value="follows")])
    return req


# Where rotel 0.0.1a15 and the contrib exporter (production) spell a value differently, the receiver
# writes the contrib exporter's spelling (pcommon's AsString): arrays and maps as plain JSON, bytes as
# base64, doubles in the shortest fixed notation. The views read both.
CONTRIB_SPELLING = {"big": "1000000000000000000000", "whole": "3", "bytes": "AAE=", "arr": '["a",2,true]',
                    "map": '{"x":1,"y":"z"}'}


def test_rows_are_the_ones_rotel_writes(migrated, ingest, start_rotel, ch_client, pl):
    """Every column of every span, for every attribute type, equals what rotel stores for the same
    spans, apart from the values rotel spells unlike the contrib exporter."""
    rotel = start_rotel(migrated)
    service = f"same-{uuid.uuid4().hex[:8]}"
    ids_rotel = [os.urandom(16) for _ in range(6)]
    ids_ingest = [os.urandom(16) for _ in range(6)]
    assert _post(rotel.http_endpoint[1], _every_kind_of_value(ids_rotel, service).SerializeToString())[0] == 200
    assert _post(ingest.http_port, _every_kind_of_value(ids_ingest, service).SerializeToString())[0] == 200
    otel = migrated.SWARMLENS_OTEL_DATABASE
    sql = ("SELECT * EXCEPT (TraceId, `Links.TraceId`) FROM {otel:Identifier}.otel_traces "
           "WHERE TraceId IN {ids:Array(String)} ORDER BY SpanName")
    rows = lambda ids: ch_client.query(sql, parameters={"otel": otel, "ids": [i.hex() for i in ids]}).result_rows
    by_rotel = pl.wait_until(lambda: (lambda r: r if len(r) == 6 else None)(rows(ids_rotel)), 30, what="rotel's rows")
    by_ingest = pl.wait_until(lambda: (lambda r: r if len(r) == 6 else None)(rows(ids_ingest)), 30,
                              what="the receiver's rows")
    attrs = 10  # SpanAttributes, with TraceId left out
    for mine, theirs in zip(by_ingest, by_rotel):
        diff = {n: (a, b) for n, (a, b) in enumerate(zip(mine, theirs)) if a != b and n != attrs
                # rotel 0.0.1a15 stores SPAN_KIND_CONSUMER as 'client'; the contrib exporter as 'Consumer'
                and (a, b) != ("Consumer", "client")}
        assert not diff, f"{mine[4]}: column: (receiver, rotel) {diff}"
        assert mine[attrs] == {**theirs[attrs], **CONTRIB_SPELLING}, (mine[attrs], theirs[attrs])
        assert theirs[attrs]["arr"].startswith('{"values"')  # still true of rotel, or this test needs a look


def test_a_swarm_app_gets_every_task_stored_once(migrated, ingest, ch_client, pl, tmp_path):
    run = f"ing-{uuid.uuid4().hex[:8]}"
    tasks = 9
    url = f"http://127.0.0.1:{ingest.http_port}"
    ran = pl.finish_app(pl.start_app(url, tasks, run, tmp_path / "ran.json"), tmp_path / "ran.json")
    pl.wait_until(lambda: pl.task_count(ch_client, migrated, run) == tasks, 30, what="every task in the tasks table")
    pl.check_tasks(ch_client, migrated, ran, run)


def test_after_a_clean_restart_new_requests_are_stored_not_taken_for_repeats(migrated, ch_client, pl, tmp_path):
    """A clean stop empties the log and numbering starts again; ClickHouse still remembers the last
    run's insert tokens, so a new segment must never carry one of them (it would be dropped as a
    repeat: acknowledged, never stored)."""
    from swarmlens.ingest.server import Ingest

    runs = [f"restart-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    for run in runs:
        ing = Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
        try:
            for part in range(3):  # three segments per run
                assert _post(ing.http_port, _tasks_request(f"{run}-{part}", 4, bad_value=False))[0] == 200
                pl.wait_until(lambda: ing.status()["counts"].get("spans_inserted") == 4 * (part + 1), 30,
                              what="the insert")
        finally:
            ing.stop()
        assert not ing.wal.sealed()
    for run in runs:
        for part in range(3):
            assert pl.task_count(ch_client, migrated, f"{run}-{part}") == 4, f"{run}-{part} lost"


def _tasks_request(run: str, tasks: int, bad_value: bool):
    """`tasks` root spans of distinct users; with bad_value, the first one's input is not UTF-8."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", string_value="utf8-test")])
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for n in range(tasks):
        s = ss.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="invoke_workflow swarm", kind=1,
                         start_time_unix_nano=now, end_time_unix_nano=now + 2_000_000)
        s.attributes.extend([_kv("enduser.id", string_value=f"{run}-{n}"),
                             _kv("swarm.task.input", string_value="MARKER" if n == 0 else "fine"),
                             _kv("swarm.task.usage.input_tokens", int_value=10)])
    body = req.SerializeToString()
    return body.replace(b"MARKER", b"MA\xff\xfeER") if bad_value else body


def test_an_invalid_utf8_value_costs_nothing_else_over_http_and_grpc(migrated, ingest, ch_client, pl):
    import grpc

    run = f"utf8-{uuid.uuid4().hex[:8]}"
    body = _tasks_request(run + "h", 10, bad_value=True)
    status, answer = _post(ingest.http_port, body)
    assert status == 200, answer
    channel = grpc.insecure_channel(f"127.0.0.1:{ingest.grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=None, response_deserializer=None)
    export(_tasks_request(run + "g", 10, bad_value=True), timeout=30)
    channel.close()
    for prefix in (run + "h", run + "g"):
        pl.wait_until(lambda: pl.task_count(ch_client, migrated, prefix) == 10, 30, what=f"all 10 tasks of {prefix}")
        inputs = ch_client.query(
            "SELECT input FROM {db:Identifier}.tasks WHERE user_id = {u:String}",
            parameters={"db": migrated.SWARMLENS_DATABASE, "u": prefix + "-0"}).result_rows
        assert inputs == [("MA\ufffd\ufffdER",)]
    assert ingest.status()["repairs"]["invalid_utf8"] == 2


def test_spans_without_valid_ids_are_dropped_counted_and_reported(migrated, ingest, ch_client, pl):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    run = f"ids-{uuid.uuid4().hex[:8]}"
    req = ExportTraceServiceRequest.FromString(_tasks_request(run, 4, bad_value=False))
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[1].trace_id = b"short"
    spans[2].span_id = b""
    status, answer = _post(ingest.http_port, req.SerializeToString())
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(answer).partial_success
    assert partial.rejected_spans == 2 and "trace id must be 16 bytes" in partial.error_message
    pl.wait_until(lambda: pl.task_count(ch_client, migrated, run) == 2, 30, what="the two valid tasks")
    assert ingest.status()["repairs"]["dropped_spans"] == 2


@pytest.mark.parametrize("body, content_type, encoding, status", [
    (b"\xff\xff\xff\xff not protobuf", "application/x-protobuf", "", 400),
    (b"{not json", "application/json", "", 400),
    (b"\x1f\x8b\x08\x00 truncated gzip", "application/x-protobuf", "gzip", 400),
    (b"", "text/plain", "", 415),
    (__import__("gzip").compress(b"\0" * (17 << 20)), "application/x-protobuf", "gzip", 413),
])
def test_an_unreadable_body_is_refused_with_a_clear_status(ingest, body, content_type, encoding, status):
    headers = {"Content-Encoding": encoding} if encoding else {}
    got, answer = _post(ingest.http_port, body, content_type, **headers)
    assert got == status, answer
    assert answer.strip()


def test_json_and_gzip_bodies_are_taken(migrated, ingest, ch_client, pl):
    import gzip

    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    run = f"fmt-{uuid.uuid4().hex[:8]}"
    assert _post(ingest.http_port, gzip.compress(_tasks_request(run + "z", 3, False)), "application/x-protobuf",
                 **{"Content-Encoding": "gzip"})[0] == 200
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(_tasks_request(run + "j", 3, False)))
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # OTLP/JSON ids are hex
        import base64

        span["traceId"] = base64.b64decode(span["traceId"]).hex()
        span["spanId"] = base64.b64decode(span["spanId"]).hex()
    import json

    assert _post(ingest.http_port, json.dumps(doc).encode(), "application/json")[0] == 200
    for prefix in (run + "z", run + "j"):
        pl.wait_until(lambda: pl.task_count(ch_client, migrated, prefix) == 3, 30, what=f"the tasks of {prefix}")


def test_a_retried_request_is_stored_once_even_across_a_restart(migrated, ch_client, pl, tmp_path):
    from swarmlens.ingest.server import Ingest

    run = f"retry-{uuid.uuid4().hex[:8]}"
    body = _tasks_request(run, 5, bad_value=False)
    first = Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        assert _post(first.http_port, body)[0] == 200
        pl.wait_until(lambda: first.status()["counts"].get("spans_inserted") == 5, 30, what="the insert")
    finally:
        first.stop()
    again = Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        assert _post(again.http_port, body)[0] == 200  # a sender that never heard the first answer
        assert again.status()["counts"]["duplicate_requests"] == 1
    finally:
        again.stop()
    assert pl.task_count(ch_client, migrated, run) == 5
    assert ch_client.query("SELECT count() FROM {otel:Identifier}.otel_traces WHERE SpanAttributes['enduser.id'] "
                           "LIKE {p:String}", parameters={"otel": migrated.SWARMLENS_OTEL_DATABASE,
                                                          "p": run + "-%"}).result_rows[0][0] == 5


def test_a_large_segment_goes_in_chunks_and_a_repeat_after_a_crash_is_dropped(migrated, ch_client, pl, tmp_path,
                                                                               monkeypatch):
    import hashlib
    import shutil

    from swarmlens.ingest import inserter, server
    from swarmlens.store.client import connect

    monkeypatch.setattr(inserter, "INSERT_ROWS", 4)
    run = f"chunks-{uuid.uuid4().hex[:8]}"
    ing = server.Ingest(migrated, str(tmp_path / "ingest"))  # not started: the test drives the inserter
    for n in range(3):
        body = _tasks_request(f"{run}{n}", 5, bad_value=False)
        ing.wal.append(hashlib.blake2b(body, digest_size=server.DIGEST_BYTES).digest() + body)
    ing.wal.seal()
    (segment,) = ing.wal.sealed()
    kept = tmp_path / "copy.wal"
    shutil.copy(segment.path, kept)
    client = connect(migrated)
    try:
        ing.inserter._insert_segment(client, segment)   # 15 rows in three inserts, one per request of 5
        shutil.copy(kept, segment.path)        # a crash before the segment was deleted: inserted again
        ing.inserter._insert_segment(client, segment)
    finally:
        client.close()
        ing.wal.close()
    for n in range(3):
        assert pl.task_count(ch_client, migrated, f"{run}{n}") == 5
    assert ch_client.query("SELECT count() FROM {otel:Identifier}.otel_traces WHERE SpanAttributes['enduser.id'] "
                           "LIKE {p:String}", parameters={"otel": migrated.SWARMLENS_OTEL_DATABASE,
                                                          "p": run + "%"}).result_rows[0][0] == 15
    assert ing.stats.counts["spans_inserted"] == 30 and ing.stats.counts["segments_inserted"] == 2


def test_with_clickhouse_away_requests_are_acknowledged_kept_on_disk_and_inserted_later(migrated, ch_client, pl,
                                                                                       tmp_path):
    from swarmlens.ingest.server import Ingest
    from swarmlens_testing.ports import free_port

    run = f"away-{uuid.uuid4().hex[:8]}"
    nowhere = config_mod.Config({**migrated, "SWARMLENS_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}"})
    away = Ingest(nowhere, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        assert _post(away.http_port, _tasks_request(run, 4, bad_value=False))[0] == 200
        pl.wait_until(lambda: away.status()["counts"].get("insert_failures"), 30, what="a failed insert")
        assert away.status()["backlog_segments"] == 1
    finally:
        started = time.monotonic()
        away.stop()
    assert time.monotonic() - started < 15, "stop waited for a ClickHouse that is not there"
    back = Ingest(migrated, str(tmp_path / "ingest"), batch_seconds=0.1).start("127.0.0.1", 0, 0)
    try:
        pl.wait_until(lambda: pl.task_count(ch_client, migrated, run) == 4, 30, what="the kept tasks")
        pl.wait_until(lambda: back.status()["backlog_segments"] == 0, 30, what="the log emptied")
    finally:
        back.stop()


def _varlen(b: bytes) -> bytes:
    from swarmlens.ingest.otlp import _put_varint

    out = bytearray()
    _put_varint(out, len(b))
    return bytes(out) + b


def _deep_value_text(depth: int) -> str:
    value = '{"stringValue": "bottom"}'
    for _ in range(depth - 1):
        value = '{"kvlistValue": {"values": [{"key": "k", "value": ' + value + '}]}}'
    return value


def _with_deep_value(body: bytes, depth: int, as_json: bool) -> bytes:
    """The request with an attribute ``deep`` nested ``depth`` maps deep on its first span, written
    at the wire (or text) level: protobuf's own objects refuse more than 100 levels."""
    import base64
    import json

    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    req = ExportTraceServiceRequest.FromString(body)
    if as_json:
        req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value.string_value = "DEEPMARK"
        doc = json_format.MessageToDict(req)
        for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId"):
                span[key] = base64.b64decode(span[key]).hex()
        return json.dumps(doc).replace('{"stringValue": "DEEPMARK"}', _deep_value_text(depth)).encode()
    inner = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth - 1):
        inner = b"\x32" + _varlen(b"\x0a" + _varlen(b"\x0a\x01k\x12" + _varlen(inner)))
    rs = req.resource_spans[0]
    ss = rs.scope_spans[0]
    spans = [s.SerializeToString() for s in ss.spans]
    spans[0] += b"\x4a" + _varlen(b"\x0a\x04deep\x12" + _varlen(inner))
    scope = b"".join(b"\x12" + _varlen(s) for s in spans)
    rs_bytes = b"\x0a" + _varlen(rs.resource.SerializeToString()) + b"\x12" + _varlen(scope)
    return b"\x0a" + _varlen(rs_bytes)


@pytest.mark.parametrize("depth", [120, 2000])
def test_a_deeply_nested_value_costs_only_itself_over_http_grpc_and_json(migrated, ingest, ch_client, pl, depth):
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    run = f"deep{depth}-{uuid.uuid4().hex[:8]}"
    status, answer = _post(ingest.http_port, _with_deep_value(_tasks_request(run + "h", 10, False), depth, False))
    assert status == 200, answer
    assert "nested deeper than" in ExportTraceServiceResponse.FromString(answer).partial_success.error_message
    status, answer = _post(ingest.http_port, _with_deep_value(_tasks_request(run + "j", 10, False), depth, True),
                           "application/json")
    assert status == 200, answer
    channel = grpc.insecure_channel(f"127.0.0.1:{ingest.grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=None, response_deserializer=None)
    answer = export(_with_deep_value(_tasks_request(run + "g", 10, False), depth, False), timeout=30)
    channel.close()
    assert "nested deeper than" in ExportTraceServiceResponse.FromString(answer).partial_success.error_message
    for prefix in (run + "h", run + "j", run + "g"):
        pl.wait_until(lambda: pl.task_count(ch_client, migrated, prefix) == 10, 30, what=f"all 10 tasks of {prefix}")
    deep = ch_client.query("SELECT SpanAttributes['deep'] FROM {otel:Identifier}.otel_traces "
                           "WHERE SpanAttributes['enduser.id'] = {u:String}",
                           parameters={"otel": migrated.SWARMLENS_OTEL_DATABASE, "u": run + "h-0"}).result_rows
    assert len(deep) == 1 and "dropped by swarmlens" in deep[0][0] and deep[0][0].count('"k"') == 15
    assert ingest.status()["repairs"]["value_too_deep"] == 3
