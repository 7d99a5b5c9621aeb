"""Zero-config tracing of a Swarm app: ``import opentelemetry.instrumentation.openai_swarm.auto``.

Put the import on the first line of the app. It

1. sets up the OpenTelemetry SDK if the app has not set a TracerProvider: a ``TracerProvider``
   whose resource comes from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, with a
   ``BatchSpanProcessor`` and the exporter named by ``OTEL_TRACES_EXPORTER`` (default ``otlp``;
   also ``console`` or ``none``). The OTLP exporter speaks ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
   / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (default ``http/protobuf``; ``grpc`` needs
   ``opentelemetry-exporter-otlp-proto-grpc``) and reads endpoint, headers, timeout and
   compression from the standard ``OTEL_EXPORTER_OTLP_*`` variables itself.
   ``OTEL_SDK_DISABLED=true`` turns all of this off;
2. instruments Swarm, whether ``swarm`` was imported before this module or is imported later;
3. flushes and shuts the provider it created down at interpreter exit, so the last task's spans
   are not lost.

If a provider is already set (the app's own, or ``opentelemetry-instrument``'s), it is used
as is and nothing else is configured.
"""

from __future__ import annotations

import atexit
import os
from typing import Optional

from opentelemetry import trace

from . import SwarmInstrumentor
from .utils import logger

provider = None  # the TracerProvider this module created, if any


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporter():
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    name = (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip().lower()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported by the Swarm auto setup; using otlp", name)
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
            return GrpcExporter()
        except ImportError:
            logger.warning("OTLP protocol grpc requested but opentelemetry-exporter-otlp-proto-grpc is not "
                           "installed; exporting over http/protobuf")
    elif protocol not in ("http/protobuf", "http"):
        logger.warning("OTLP protocol %s is not supported; exporting over http/protobuf", protocol)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _provider_is_configured() -> bool:
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def setup() -> Optional[object]:
    """Configure the SDK when nobody has, then instrument Swarm. Idempotent."""
    global provider
    if _sdk_disabled():
        return None
    if provider is None and not _provider_is_configured():
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            created = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
            exporter = _exporter()
            if exporter is not None:
                created.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(created)
            if trace.get_tracer_provider() is created:
                provider = created
                atexit.register(created.shutdown)  # shutdown flushes the batch processor
        except Exception:
            logger.warning("Swarm auto setup: configuring the OpenTelemetry SDK failed; tracing is off",
                           exc_info=True)
    instrumentor = SwarmInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        try:
            instrumentor.instrument()
        except Exception:
            logger.warning("Swarm auto setup: instrumenting Swarm failed", exc_info=True)
    return provider


setup()
