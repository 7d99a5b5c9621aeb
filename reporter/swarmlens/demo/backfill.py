"""Backfill, a demo-only feature: spans stamped in the past.

The instrumentation stamps spans with the real clock, as it must. To give a fresh install a
history of past days, the demo runs each backfilled task now and shifts all timestamps of its
trace (span start and end, event times) back by the task's offset just before export. Nothing
else about the spans changes: ids, attributes, durations, and the OTLP path are those of a real
run. Applications never do this.

Mechanics: ``TimeShift`` is a SpanProcessor that notes, when a root span starts, the offset the
demo put in the context variable ``OFFSET_NS`` for the running task; ``ShiftingExporter`` wraps
the real exporter and exports time-shifted copies of the spans of those traces. The demo
installs a TracerProvider with both before the zero-config import, which then uses that provider
as it is.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

OFFSET_NS: contextvars.ContextVar[int] = contextvars.ContextVar("swarmlens_demo_offset_ns", default=0)


class TimeShift(SpanProcessor):
    """Remembers the backfill offset of each trace started while OFFSET_NS is set."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}
        self._lock = threading.Lock()

    def on_start(self, span, parent_context=None) -> None:
        offset = OFFSET_NS.get()
        if offset and span.parent is None:
            with self._lock:
                self._offsets[span.context.trace_id] = offset

    def offset(self, trace_id: int, done: bool) -> int:
        with self._lock:
            return self._offsets.pop(trace_id, 0) if done else self._offsets.get(trace_id, 0)


def _shifted(span: ReadableSpan, offset: int) -> ReadableSpan:
    events = [Event(e.name, e.attributes, timestamp=e.timestamp - offset) for e in span.events]
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=span.attributes, events=events, links=span.links, kind=span.kind, status=span.status,
        start_time=span.start_time - offset if span.start_time else None,
        end_time=span.end_time - offset if span.end_time else None,
        instrumentation_scope=span.instrumentation_scope)


class ShiftingExporter(SpanExporter):
    """Exports through ``inner``, with the spans of backfilled traces moved into the past."""

    def __init__(self, inner: SpanExporter, clock: TimeShift):
        self.inner = inner
        self.clock = clock

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out = []
        # Children end (and are exported) before their root: forget a trace's offset with its root.
        for span in spans:
            offset = self.clock.offset(span.context.trace_id, done=span.parent is None)
            out.append(_shifted(span, offset) if offset else span)
        return self.inner.export(out)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
