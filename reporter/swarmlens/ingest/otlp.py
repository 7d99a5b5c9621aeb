"""OTLP trace requests: decoding with repair, and the ``otel_traces`` rows of a request.

``decode`` turns the body of an OTLP/HTTP or OTLP/gRPC export into an
``ExportTraceServiceRequest``. A bad value never costs the rest of its request:

- a string that is not valid UTF-8 (protobuf refuses the whole message for one) is repaired at the
  wire level, each invalid sequence replaced by U+FFFD, and counted;
- a span whose trace or span id does not have the OTLP length (16 and 8 bytes) cannot be stored as
  a span of any trace: it is dropped and counted, and the request's ``partial_success`` says so;
- a parent span id or link id of the wrong length is cleared and counted;
- an attribute value past the limits below is repaired on its own, and counted: nested deeper than
  MAX_VALUE_DEPTH levels (the nesting past it becomes a short string saying so; protobuf refuses a
  message nested more than 100 deep, and Python's JSON reader about 1,000, so a deeper body is pruned
  before it is parsed), more than MAX_VALUE_ITEMS elements in one value (the rest dropped), a string
  or bytes value over MAX_VALUE_BYTES (cut), more than MAX_ATTRIBUTES attributes on one span, event,
  link, scope or resource (the rest dropped). The response's ``partial_success`` says what was done.

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

import re

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from swarmlens.errors import SwarmlensError
from swarmlens.ingest import conventions

# The columns written, in the order rotel and the test span builders (tests/support/swarmlens_testing/spans.py) use.
COLUMNS: tuple[str, ...] = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
    "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
    "Links.TraceState", "Links.Attributes",
)

MAX_VALUE_DEPTH = 16          # levels of arrays / maps in one attribute value
MAX_VALUE_ITEMS = 10_000      # elements (at every level) in one attribute value
MAX_VALUE_BYTES = 1 << 20     # one string or bytes value
MAX_ATTRIBUTES = 1_000        # attributes of one span, event, link, scope or resource
# JSON nesting kept when a body is too deep to parse as it is: deep enough to keep MAX_VALUE_DEPTH
# levels of maps (4 JSON levels each, below 9 to reach a span's attribute), shallow enough for
# protobuf's JSON reader (100 messages deep: 3 per level of maps) and Python's stack.
MAX_JSON_DEPTH = 96
TOO_DEEP = f"[value nested deeper than {MAX_VALUE_DEPTH} levels: dropped by swarmlens]"
_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"

_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS = {0: "Unset", 1: "Ok", 2: "Error"}


class BadRequest(SwarmlensError):
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
        said = []
        if self.rejected:
            resp.partial_success.rejected_spans = self.rejected
            said.append(f"{self.rejected} span(s) dropped: trace id must be 16 bytes and span id 8 bytes")
        values = {k: v for k, v in self.repairs.items() if k in _VALUE_REPAIRS and v}
        if values:
            # rejected_spans 0 with a message: a warning in OTLP's terms; the spans were stored.
            said.append("attribute values repaired, the rest of their spans stored: " + ", ".join(
                f"{v} {_VALUE_REPAIRS[k]}" for k, v in sorted(values.items())))
        if said:
            resp.partial_success.error_message = "; ".join(said)
        return resp


_VALUE_REPAIRS = {
    "value_too_deep": f"value(s) nested deeper than {MAX_VALUE_DEPTH} levels cut there",
    "value_items_dropped": f"element(s) past {MAX_VALUE_ITEMS} in one value dropped",
    "value_too_long": f"string or bytes value(s) over {MAX_VALUE_BYTES} bytes cut",
    "attributes_dropped": f"attribute(s) past {MAX_ATTRIBUTES} on one span, event, link, scope or resource dropped",
}


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
            # Invalid UTF-8, or nesting past protobuf's limit of 100: repaired at the wire level.
            found: Counter = Counter()
            fixed = repair_wire(body, ExportTraceServiceRequest.DESCRIPTOR, found)
            if fixed is None:
                raise BadRequest("the body is not a protobuf ExportTraceServiceRequest") from None
            try:
                request = ExportTraceServiceRequest.FromString(fixed)
            except DecodeError:
                raise BadRequest("the body is not a protobuf ExportTraceServiceRequest") from None
            repairs.update(found)
    limit_values(request, repairs, check_lengths=len(body) > MAX_VALUE_BYTES)
    kept = _validate(request, repairs)
    return Decoded(request, kept, repairs)


def limit_values(request: ExportTraceServiceRequest, repairs: Counter, check_lengths: bool = True) -> None:
    """Enforces the limits on attribute values in place, each offending value repaired on its own.
    ``check_lengths`` False skips the length check of strings (a body smaller than the limit holds none)."""
    def attrs(kvs) -> None:
        if len(kvs) > MAX_ATTRIBUTES:
            repairs["attributes_dropped"] += len(kvs) - MAX_ATTRIBUTES
            del kvs[MAX_ATTRIBUTES:]
        for kv in kvs:
            v = kv.value
            kind = v.WhichOneof("value")
            if kind == "array_value" or kind == "kvlist_value":
                _limit_nested(v, kind, 1, [MAX_VALUE_ITEMS], repairs, check_lengths)
            elif check_lengths and (kind == "string_value" or kind == "bytes_value"):
                _limit_length(v, kind, repairs)

    for rs in request.resource_spans:
        attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            attrs(ss.scope.attributes)
            for span in ss.spans:
                attrs(span.attributes)
                for event in span.events:
                    attrs(event.attributes)
                for link in span.links:
                    attrs(link.attributes)


def _limit_length(v, kind: str, repairs: Counter) -> None:
    if kind == "string_value" and len(v.string_value.encode("utf-8")) > MAX_VALUE_BYTES:
        v.string_value = v.string_value.encode("utf-8")[:MAX_VALUE_BYTES].decode("utf-8", errors="ignore")
        repairs["value_too_long"] += 1
    elif kind == "bytes_value" and len(v.bytes_value) > MAX_VALUE_BYTES:
        v.bytes_value = v.bytes_value[:MAX_VALUE_BYTES]
        repairs["value_too_long"] += 1


def _limit_nested(v, kind: str, depth: int, budget: list[int], repairs: Counter, check_lengths: bool) -> None:
    """``v`` is an array or map value at nesting level ``depth`` (1 for an attribute's own value)."""
    if depth >= MAX_VALUE_DEPTH:
        v.string_value = TOO_DEEP  # the oneof: drops the nesting below
        repairs["value_too_deep"] += 1
        return
    items = v.array_value.values if kind == "array_value" else v.kvlist_value.values
    if len(items) > budget[0]:
        repairs["value_items_dropped"] += len(items) - budget[0]
        del items[budget[0]:]
    budget[0] -= len(items)
    for item in items:
        child = item if kind == "array_value" else item.value
        ck = child.WhichOneof("value")
        if ck == "array_value" or ck == "kvlist_value":
            _limit_nested(child, ck, depth + 1, budget, repairs, check_lengths)
        elif check_lengths and (ck == "string_value" or ck == "bytes_value"):
            _limit_length(child, ck, repairs)


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
    """OTLP/JSON: ids are hex strings there (protobuf's JSON mapping would read them as base64).
    A body nested too deep for Python's parsers has its deepest containers emptied first (the
    attribute value they belong to is then cut at MAX_VALUE_DEPTH by ``limit_values``)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return _parse_json(text)
    except (RecursionError, _TooDeep):
        pass
    try:
        return _parse_json(prune_json(text, MAX_JSON_DEPTH))
    except (RecursionError, _TooDeep):
        raise BadRequest("the JSON is nested too deeply") from None


class _TooDeep(Exception):
    pass


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def prune_json(text: str, max_depth: int) -> str:
    """``text`` with every array or object that starts deeper than ``max_depth`` left empty."""
    out, depth, keep_from, cut_at = [], 0, 0, None
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group()
        if tok in ("[", "{"):
            depth += 1
            if depth == max_depth + 1 and cut_at is None:
                cut_at = m.start()
                out.append(text[keep_from:cut_at + 1])
        elif tok in ("]", "}"):
            if cut_at is not None and depth == max_depth + 1:
                keep_from = m.start()
                cut_at = None
            depth -= 1
    out.append(text[keep_from:] if cut_at is None else text[cut_at:cut_at + 1] + ("}" if text[cut_at] == "{" else "]"))
    return "".join(out)


def _parse_json(text: str) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None

    stack = [doc]  # a loop, not recursion: depth costs no stack here
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                value = node.get(key)
                if isinstance(value, str) and value:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        node[key] = ""  # then dropped or cleared, and counted, by _validate
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        if "too deep" in str(exc):
            raise _TooDeep() from None
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


def repair_utf8(data: bytes, descriptor) -> tuple[bytes, int]:
    """Walks a serialized message by its descriptor and replaces every invalid UTF-8 sequence of a
    string field with U+FFFD; returns the repaired bytes and how many strings were repaired."""
    found: Counter = Counter()
    fixed = repair_wire(data, descriptor, found)
    return (data if fixed is None else fixed), found["invalid_utf8"]


def repair_wire(data: bytes, descriptor, repairs: Counter, depth: int = 0, nesting: int = 0) -> bytes | None:
    """Walks a serialized message by its descriptor: every invalid UTF-8 sequence of a string field
    becomes U+FFFD (counted as ``invalid_utf8``), and an array or map value MAX_VALUE_DEPTH levels deep
    becomes a short string saying so (``value_too_deep``) without its insides being read, as
    ``limit_values`` would cut it. Unknown
    fields and every other value are copied as they are. Returns None when nothing was changed."""
    if depth > 64:
        raise BadRequest("protobuf nested too deeply")
    if descriptor.full_name == _ANY_VALUE:
        nesting += 1
    out = bytearray()
    changed = False
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
            new = None
            if fd is not None and fd.type == FieldDescriptor.TYPE_STRING:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    new = value.decode("utf-8", errors="replace").encode("utf-8")
                    repairs["invalid_utf8"] += 1
            elif fd is not None and fd.type == FieldDescriptor.TYPE_MESSAGE:
                if fd.message_type.full_name == _ANY_VALUE and nesting + 1 >= MAX_VALUE_DEPTH \
                        and _any_is_container(value):
                    new = _TOO_DEEP_WIRE
                    repairs["value_too_deep"] += 1
                else:
                    new = repair_wire(value, fd.message_type, repairs, depth + 1, nesting)
            if new is None:
                out += data[start:pos]
                continue
            changed = True
            _put_varint(out, tag)
            _put_varint(out, len(new))
            out += new
            continue
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise BadRequest("truncated protobuf")
        out += data[start:pos]
    return bytes(out) if changed else None


# ---------------------------------------------------------------------------------------------
# Rows


def _any_is_container(data: bytes) -> bool:
    """Whether a serialized AnyValue holds an array (field 5) or a map (field 6)."""
    pos, end, found = 0, len(data), False
    while pos < end:
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            pos += length
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        found = (tag >> 3) in (5, 6)  # the last of a oneof's fields wins
    return found


def _too_deep_wire() -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    return AnyValue(string_value=TOO_DEEP).SerializeToString()


_TOO_DEEP_WIRE = _too_deep_wire()


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
