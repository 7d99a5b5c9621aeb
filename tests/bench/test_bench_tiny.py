"""The benchmarks' CI run: the tiny preset end to end, checking that it completes and that every ratio
is computed (present and positive), not what the ratios are: CI machines are too noisy for values.
And the generator's data obeys the counting rule, so the reports it feeds agree with each other."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_tiny_preset_completes_and_computes_every_ratio(tmp_path):
    out_json, docs = tmp_path / "results.json", tmp_path / "benchmarks.md"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_reports.py"), "--preset", "tiny", "--reps", "20",
         "--json", str(out_json), "--write-docs", "--docs", str(docs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=280,
        env={**os.environ, "TZ": "UTC"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 280
    res = json.loads(out_json.read_text())
    meta = res["meta"]
    assert meta["tasks"] == 2000 and meta["spans"] > 8 * meta["tasks"]
    pg_available = meta["postgres_error"] is None

    measured = [r for r in res["reports"] if "derived" in r]
    assert len(res["reports"]) >= 12
    # The baselines are written here, so they must always run; a reporter query may still be in progress.
    for r in res["reports"]:
        assert "raw" in r, (r["name"], r.get("errors"))
        assert not pg_available or "pg" in r, (r["name"], r.get("errors"))
    assert measured, "no report ran on the derived tables"
    for r in measured:
        for design in ("derived", "raw") + (("pg",) if pg_available else ()):
            assert r[design]["runs"] >= 20
            assert _positive(r[design]["p50_ms"]) and _positive(r[design]["p95_ms"]), (r["name"], design)
        assert _positive(r["x_raw_p50"]) and _positive(r["x_raw_p95"]), r["name"]
        if pg_available:
            assert _positive(r["x_pg_p50"]) and _positive(r["x_pg_p95"]), r["name"]

    storage = res["storage"]
    assert _positive(storage["sample"]["without content"]["per_span"])
    assert any(t["table"].endswith(".otel_traces") and _positive(t["bytes"]) for t in storage["tables"])
    if pg_available:
        assert _positive(res["pg_storage"]["total"])

    text = docs.read_text()
    for heading in ("## Reports at scale", "## Storage", "## How to reproduce"):
        assert heading in text
    assert ("× vs PostgreSQL" in text) and ("unavailable" in text) != pg_available


def test_generated_tasks_obey_the_counting_rule(clickhouse_url, fresh_databases):
    """Task totals (root spans), agent runs and chat calls add up to the same tokens, every task is
    derived once, and the PostgreSQL rows carry the same totals."""
    sys.path.insert(0, BENCH)
    import clickhouse_connect
    import generate

    from swarmlens import config
    from swarmlens.store.migrate import migrate_from_config

    cfg = config.load(fresh_databases)
    migrate_from_config(cfg)
    otel, db = cfg["SWARMLENS_OTEL_DATABASE"], cfg["SWARMLENS_DATABASE"]
    client = clickhouse_connect.get_client(dsn=clickhouse_url, compress=False, autogenerate_session_id=False)
    copy_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"task_history_{db}.copy")
    try:
        gen = generate.Generator(300, seed=5)
        stats = generate.load(client, gen, otel_db=otel, db=db, pg_copy_path=copy_path, show_progress=False)
        lines = open(copy_path).read().splitlines()
    finally:
        if os.path.exists(copy_path):
            os.remove(copy_path)
    q = lambda sql: client.query(sql).result_rows[0]  # noqa: E731
    assert q(f"SELECT count() FROM {otel}.otel_traces")[0] == stats.spans
    tasks, task_tokens, errors = q(f"SELECT count(), sum(total_tokens), countIf(status = 'error') FROM {db}.tasks")
    assert (tasks, errors) == (300, stats.errors)
    assert q(f"SELECT sum(input_tokens + output_tokens) FROM {db}.agent_runs")[0] == task_tokens
    assert q(f"SELECT sum(input_tokens + output_tokens) FROM {db}.chat_calls")[0] == task_tokens
    assert q(f"SELECT sum(input_tokens + output_tokens) FROM {db}.usage_daily")[0] == task_tokens
    assert q(f"SELECT min(length(agents)), max(handoffs) FROM {db}.tasks")[0] >= 1
    assert q(f"SELECT uniqExact(agent) FROM {db}.agent_runs")[0] >= 10
    assert len(lines) == 300
    assert sum(int(line.split("\t")[6]) for line in lines) == task_tokens
    # Deterministic: the same seed gives the same tasks.
    again = generate.Generator(300, seed=5)
    first = next(again.tasks())
    assert first[4] == next(generate.Generator(300, seed=5).tasks())[4]
