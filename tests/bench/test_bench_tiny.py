"""The benchmarks' CI run: the tiny preset end to end with both PostgreSQL baselines, failing on a
wrong answer (the bench's own exit status, from comparing every report and ad-hoc question across the
designs), and checking that every ratio is computed (present and positive), not what the ratios are:
CI machines are too noisy for values. And the generator's data obeys the counting rule, and the
comparison itself catches a wrong number, a missing row and a wrong key.

bench/ is a package of the checkout (not installed): these tests import its modules as ``bench.NAME``
and run the bench as ``python -m bench.bench_reports`` from the repository root, so pytest runs from
the root as ``python -m pytest`` (scripts/test.sh), which puts the root on the path."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench(name: str):
    """bench.NAME, or a failure that says how to run pytest so that bench imports."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != "bench":
            raise
        pytest.fail(f"bench.{name} does not import: run the tests from the repository root as "
                    f"`.venv/bin/python -m pytest` (scripts/test.sh does), which puts the root on the path")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_tiny_preset_runs_both_baselines_and_every_answer_agrees(tmp_path):
    out_json, docs = tmp_path / "results.json", tmp_path / "benchmarks.md"
    started = time.monotonic()
    # A fixed last day, so the data (and which tasks straddle a midnight) is the same every day.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_reports", "--preset", "tiny", "--reps", "3", "--end",
         "2026-11-28", "--adhoc-reps", "1", "--no-pages", "--no-query-files", "--json", str(out_json),
         "--write-docs", "--docs", str(docs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TZ": "UTC"})
    try:
        _, stderr = proc.communicate(timeout=280)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the bench stops its PostgreSQL server and removes its directories
        proc.communicate(timeout=60)
        raise
    # Exit status 1 is a wrong answer (printed as WRONG ANSWER on stderr) or a failed query.
    assert proc.returncode == 0, stderr[-3000:]
    assert time.monotonic() - started < 280
    res = json.loads(out_json.read_text())
    meta = res["meta"]
    assert meta["tasks"] == 2000 and meta["spans"] > 8 * meta["tasks"]
    pg_available = meta["postgres_error"] is None
    designs = ("derived", "raw") + (("pg", "pgw") if pg_available else ())

    assert len(res["reports"]) >= 14
    for r in res["reports"]:
        for design in designs:
            assert r[design]["runs"] >= 3, (r["name"], design, r.get("errors"))
            assert _positive(r[design]["p50_ms"]) and _positive(r[design]["p95_ms"]), (r["name"], design)
        for design in designs[1:]:
            assert _positive(r[f"x_{design}_p50"]), (r["name"], design)
            # every design's answer was compared with swarmlens' and agreed
            assert r["check"][design]["ok"], (r["name"], design, r["check"][design])
            assert r["check"][design]["rows"] == r["rows"]["derived"]
    # the answers are not empty: the comparisons compare something
    assert sum(r["rows"]["derived"] for r in res["reports"]) > 500
    if pg_available:
        assert len(res["adhoc"]) >= 10
        for q in res["adhoc"]:
            assert not q["errors"] and q["check"]["ok"] and q["rows"] > 0, q
            assert _positive(q["x_pgw_p50"])
        ing = res["pg_ingest"]
        assert _positive(ing["with_summaries_tasks_per_s"]) and _positive(ing["without_summaries_tasks_per_s"])
        assert "Index" in res["pgw_plans"]["task page: the task"]
        assert _positive(res["pgw_storage"]["task_history"]["total"])
        assert _positive(res["pg_seed_storage"]["total"])

    storage = res["storage"]
    assert _positive(storage["sample"]["without content"]["per_span"])
    assert any(t["table"].endswith(".otel_traces") and _positive(t["bytes"]) for t in storage["tables"])

    text = docs.read_text()
    for heading in ("## Reports at scale", "## Answers cross-checked", "## Ad-hoc analyst queries",
                    "## Ingest side by side", "## Storage", "## How to reproduce"):
        assert heading in text
    assert ("× vs PG done well" in text) and ("unavailable" in text) != pg_available
    assert "**differs**" not in text


def test_the_comparison_catches_wrong_answers():
    crosscheck = _bench("crosscheck")
    ref = crosscheck.norm_rows([("Billing", 10, 1500, 0.25), ("Triage", 7, 900, 0.125)])
    same = crosscheck.norm_rows([("Triage", 7, 900, 0.125), ("Billing", 10, 1500, 0.25)])
    assert crosscheck.compare(ref, same, keys=1, tol=crosscheck.EXACT)["ok"]  # order of equal keys may differ
    off_by_one = crosscheck.norm_rows([("Billing", 10, 1501, 0.25), ("Triage", 7, 900, 0.125)])
    c = crosscheck.compare(ref, off_by_one, keys=1, tol=crosscheck.EXACT)
    assert not c["ok"] and "1501" in c["diff"]
    assert crosscheck.compare(ref, off_by_one, keys=1, tol=1e-3)["ok"]  # within a stated tolerance
    assert not crosscheck.compare(ref, off_by_one[:1], keys=1, tol=1e-3)["ok"]  # a missing row
    wrong_key = crosscheck.norm_rows([("Billing", 10, 1500, 0.25), ("Sales", 7, 900, 0.125)])
    assert not crosscheck.compare(ref, wrong_key, keys=1, tol=0.5)["ok"]
    # PostgreSQL's UUIDs and ClickHouse's hex task ids are the same answer
    import uuid

    u = uuid.uuid4()
    assert crosscheck.norm_rows([(u,)]) == crosscheck.norm_rows([(u.hex,)])


def test_a_wrong_answer_fails_the_bench(tmp_path):
    """The bench's exit status, from a results file whose comparison found a difference."""
    bench_reports = _bench("bench_reports")
    res = {"meta": {}, "reports": [{"name": "dashboard: totals, 30 days", "kind": "aggregate", "errors": {},
                                    "check": {"pgw": {"ok": False, "diff": "row (), column 1: 9.0 against 10.0"}}}],
           "adhoc": [{"name": "q", "errors": {}, "check": {"ok": True}}]}
    failures = bench_reports.check_failures(res)
    assert failures == ["dashboard: totals, 30 days: pgw differs from the derived tables: row (), column 1: 9.0 against 10.0"]
    res["reports"][0]["check"]["pgw"]["ok"] = True
    assert bench_reports.check_failures(res) == []


def test_generated_tasks_obey_the_counting_rule(clickhouse_url, fresh_databases):
    """Task totals (root spans), agent runs and chat calls add up to the same tokens, every task is
    derived once, and the PostgreSQL rows carry the same totals."""
    import clickhouse_connect

    from swarmlens import config
    from swarmlens.store.migrate import migrate_from_config

    generate = _bench("generate")
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


def test_a_boundary_difference_passes_only_when_a_straddling_task_explains_it():
    bench_reports = _bench("bench_reports")
    spec = {"name": "monthly report: all users", "kind": "aggregate", "keys": 1, "tol": 0.03, "pick": {},
            "boundary_tasks": 0}
    derived = [("user-00001", 3, 0.0104), ("user-00002", 9, 1.5)]
    pg = [("user-00001", 3, 0.0002), ("user-00002", 9, 1.5)]  # one run's cost on the other side of the month
    assert not bench_reports.check_answers(spec, {"derived": (0, derived), "pgw": (0, pg)})["pgw"]["ok"]
    spec["boundary_tasks"] = 1
    c = bench_reports.check_answers(spec, {"derived": (0, derived), "pgw": (0, pg)})["pgw"]
    assert c["ok"] and "straddling" in c["explained"]
    # a missing row or a task-level figure is never explained away
    assert not bench_reports.check_answers(spec, {"derived": (0, derived), "pgw": (0, pg[:1])})["pgw"]["ok"]
    spec["tol"] = 1e-9
    assert not bench_reports.check_answers(spec, {"derived": (0, derived), "pgw": (0, pg)})["pgw"]["ok"]
