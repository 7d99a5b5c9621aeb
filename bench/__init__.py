"""The benchmarks of docs/benchmarks.md, docs/reliability.md and docs/embedded-clickhouse.md.

A package run from the repository root, one module per benchmark (``.venv/bin/python -m
bench.bench_reports --preset tiny``); the modules share ``bench.benchlib``, ``bench.generate``,
``bench.postgres`` and the like by those names. What they measure comes from installed packages:
swarmlens itself, and swarmlens_testing (tests/support) for the span builders, ports and harnesses
the test suite uses too. Nothing here edits sys.path, and nothing installs ``bench``."""
