"""Crash-safe OTLP ingest for the single-machine stack: receive, log durably, acknowledge, insert.

See ``swarmlens.ingest.server`` for the design and its modules, and docs/deployment.md for why it
replaces rotel under `swarmlens up` (``swarmlens.ingest.collectors`` still launches rotel on request).
"""
