"""OTLP trace requests: decoding with repair, and the ``otel_traces`` rows of a request.

``decode`` turns the body of an OTLP/HTTP or OTLP/gRPC export into an
``ExportTraceServiceRequest``. A bad value never costs the rest of its request:

- a string that is not valid UTF-8 (protobuf refuses the whole message for one) is repaired at the
  wire level, each invalid sequence replaced by U+FFFD, and counted;
- a span whose trace or span id does not have the OTLP length (16 and 8 bytes) cannot be stored as
  a span of any trace: it is dropped and counted, and the request's ``partial_success`` says so;
- a parent span id or link id of the wrong length is cleared and counted.

What is left of a body that is not protobuf (or OTLP/JSON) at all is the client's error (400).

``to_rows`` gives the rows the OpenTelemetry Collector contrib ``clickhouseexporter`` (and rotel)
write for the same spans: ids as lowercase hex, kind and status as ``Internal`` / ``Error``, every
attribute value as a string (arrays and maps as JSON), ``ServiceName`` from the resource's
``service.name``.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from swarmlens.ingest import conventions

# The columns written, in the order rotel and the test span builders (tests/support_spans.py) use.
COLUMNS: tuple[str, ...] = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
    "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
    "Links.TraceState", "Links.Attributes",
)

_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS = {0: "Unset", 1: "Ok", 2: "Error"}


class BadRequest(Exception):
    """The body is not an OTLP trace export at all (not protobuf / JSON of that message)."""


@dataclass
class Decoded:
    request: ExportTraceServiceRequest
    spans: int = 0                      # spans kept
    repairs: Counter = field(default_factory=Counter)  # what was repaired or dropped, by kind

    @property
    def rejected(self) -> int:
        return self.repairs["dropped_spans"]

    def response(self) -> ExportTraceServiceResponse:
        resp = ExportTraceServiceResponse()
        if self.rejected:
            resp.partial_success.rejected_spans = self.rejected
            resp.partial_success.error_message = (
                f"{self.rejected} span(s) dropped: trace id must be 16 bytes and span id 8 bytes")
        return resp


# ---------------------------------------------------------------------------------------------
# Decoding


def decode(body: bytes, content_type: str = "application/x-protobuf") -> Decoded:
    """Parses an export request (protobuf, or OTLP/JSON when ``content_type`` says so), repairs
    what can be repaired, drops spans that cannot be stored, and counts both."""
    repairs: Counter = Counter()
    if "json" in (content_type or "").lower():
        request = _decode_json(body)
    else:
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except DecodeError:
            fixed, n = repair_utf8(body, ExportTraceServiceRequest.DESCRIPTOR)
            if not n:
                raise BadRequest("the body is not a protobuf ExportTraceServiceRequest") from None
            try:
                request = ExportTraceServiceRequest.FromString(fixed)
            except DecodeError:
                raise BadRequest("the body is not a protobuf ExportTraceServiceRequest") from None
            repairs["invalid_utf8"] += n
    kept = _validate(request, repairs)
    return Decoded(request, kept, repairs)


def _validate(request: ExportTraceServiceRequest, repairs: Counter) -> int:
    kept = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            bad = [i for i, s in enumerate(ss.spans) if len(s.trace_id) != 16 or len(s.span_id) != 8]
            for i in reversed(bad):
                del ss.spans[i]
            repairs["dropped_spans"] += len(bad)
            for s in ss.spans:
                if s.parent_span_id and len(s.parent_span_id) != 8:
                    s.parent_span_id = b""
                    repairs["bad_parent_span_id"] += 1
                for link in s.links:
                    if (link.trace_id and len(link.trace_id) != 16) or (link.span_id and len(link.span_id) != 8):
                        link.trace_id, link.span_id = b"", b""
                        repairs["bad_link_id"] += 1
                if s.end_time_unix_nano and s.end_time_unix_nano < s.start_time_unix_nano:
                    s.end_time_unix_nano = s.start_time_unix_nano
                    repairs["negative_duration"] += 1
            kept += len(ss.spans)
    return kept


def _decode_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: ids are hex strings there (protobuf's JSON mapping would read them as base64)."""
    try:
        doc = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None

    def fix_ids(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                value = node.get(key)
                if isinstance(value, str) and value:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        node[key] = ""  # then dropped or cleared, and counted, by _validate
            for value in node.values():
                fix_ids(value)
        elif isinstance(node, list):
            for value in node:
                fix_ids(value)

    fix_ids(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(f"the JSON is not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("truncated protobuf")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadRequest("malformed protobuf varint")


def _put_varint(out: bytearray, value: int) -> None:
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def repair_utf8(data: bytes, descriptor, depth: int = 0) -> tuple[bytes, int]:
    """Walks a serialized message by its descriptor and replaces every invalid UTF-8 sequence of a
    string field with U+FFFD; returns the repaired bytes and how many strings were repaired.
    Unknown fields and every other value are copied as they are."""
    if depth > 64:
        raise BadRequest("protobuf nested too deeply")
    out = bytearray()
    fixed = 0
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, body_start = _varint(data, pos)
            pos = body_start + length
            if pos > end:
                raise BadRequest("truncated protobuf")
            fd = descriptor.fields_by_number.get(number)
            value = data[body_start:pos]
            if fd is not None and fd.type == FieldDescriptor.TYPE_STRING:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    value = value.decode("utf-8", errors="replace").encode("utf-8")
                    fixed += 1
                else:
                    out += data[start:pos]
                    continue
            elif fd is not None and fd.type == FieldDescriptor.TYPE_MESSAGE:
                value, n = repair_utf8(value, fd.message_type, depth + 1)
                if not n:
                    out += data[start:pos]
                    continue
                fixed += n
            else:
                out += data[start:pos]
                continue
            _put_varint(out, tag)
            _put_varint(out, len(value))
            out += value
            continue
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise BadRequest("truncated protobuf")
        out += data[start:pos]
    return bytes(out), fixed


# ---------------------------------------------------------------------------------------------
# Rows


def _float_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return format(Decimal(repr(v)).normalize(), "f")


def _json_value(av) -> Any:
    kind = av.WhichOneof("value")
    if kind == "string_value":
        return av.string_value
    if kind == "bool_value":
        return av.bool_value
    if kind == "int_value":
        return av.int_value
    if kind == "double_value":
        v = av.double_value
        return v if math.isfinite(v) else _float_text(v)
    if kind == "bytes_value":
        return base64.b64encode(av.bytes_value).decode()
    if kind == "array_value":
        return [_json_value(x) for x in av.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _json_value(kv.value) for kv in av.kvlist_value.values}
    return None


def value_text(av) -> str:
    """An AnyValue as the collectors store it in ``Map(String, String)``."""
    kind = av.WhichOneof("value")
    if kind == "string_value":
        return av.string_value
    if kind == "bool_value":
        return "true" if av.bool_value else "false"
    if kind == "int_value":
        return str(av.int_value)
    if kind == "double_value":
        return _float_text(av.double_value)
    if kind == "bytes_value":
        return base64.b64encode(av.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(_json_value(av), separators=(",", ":"), ensure_ascii=False)
    return ""


def attributes(kvs) -> dict[str, str]:
    return {kv.key: value_text(kv.value) for kv in kvs}


def to_rows(request: ExportTraceServiceRequest) -> list[list[Any]]:
    """The ``otel_traces`` rows of a (decoded, validated) request, in ``COLUMNS`` order.
    Timestamps are nanoseconds since the epoch (DateTime64(9) ticks)."""
    rows: list[list[Any]] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        service = resource.get("service.name", "")
        for ss in rs.scope_spans:
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for s in ss.spans:
                start = s.start_time_unix_nano
                end = max(s.end_time_unix_nano, start)
                rows.append([
                    start, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.trace_state, s.name,
                    _KINDS.get(s.kind, ""), service, resource, scope_name, scope_version,
                    conventions.to_genai(attributes(s.attributes)),  # OpenInference, OpenLLMetry -> GenAI
                    end - start, _STATUS.get(s.status.code, "Unset"), s.status.message,
                    [e.time_unix_nano for e in s.events], [e.name for e in s.events],
                    [attributes(e.attributes) for e in s.events],
                    [link.trace_id.hex() for link in s.links], [link.span_id.hex() for link in s.links],
                    [link.trace_state for link in s.links], [attributes(link.attributes) for link in s.links],
                ])
    return rows
