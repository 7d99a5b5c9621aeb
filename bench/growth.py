"""How the side-by-side figures grow with the data: one table from the --json files of
bench_reports.py runs at several sizes (the same generator and seed), per report the p50 of swarmlens
and of PostgreSQL done well, and where one overtakes the other.

    .venv/bin/python -m bench.growth tiny.json small.json full.json            # prints the section
    .venv/bin/python -m bench.growth tiny.json small.json full.json --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from bench.benchlib import write_section

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
HEADING = "## Growth"


def _ms(v):
    return "n/a" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def _x(v):
    if v is None:
        return "n/a"
    return (f"{v:.0f}×" if v >= 10 else f"{v:.1f}×") + (" swarmlens" if v >= 1 else "")


def _who(x):
    if x is None:
        return "n/a"
    return f"swarmlens {x:.1f}×" if x >= 1 else f"PG {1 / x:.1f}×"


def section(runs: list[dict]) -> str:
    runs = sorted(runs, key=lambda r: r["meta"]["tasks"])
    sizes = [f"{r['meta']['tasks']:,}" for r in runs]
    lines = [HEADING, "",
             "The same bench at several sizes (same generator, seed and code; each column is one run of "
             "`bench/bench_reports.py`, its own side-by-side loop). Each cell: swarmlens p50 / PostgreSQL done well "
             "p50 in ms, then who is faster and by how much.", "",
             "Runs: " + "; ".join(f"{r['meta']['tasks']:,} tasks: preset `{r['meta']['preset']}`, {r['meta']['reps']} "
                                  f"runs per report, ending {r['meta']['end'][:10]}" for r in runs) + ".", "",
             "| report | " + " | ".join(f"{s} tasks" for s in sizes) + " |",
             "|---|" + "---:|" * len(runs)]
    names = [r["name"] for r in runs[-1]["reports"]]
    for name in names:
        cells = []
        for run in runs:
            r = next((x for x in run["reports"] if x["name"].split(" (")[0] == name.split(" (")[0]), None)
            if not r or "derived" not in r or "pgw" not in r:
                cells.append("n/a")
                continue
            cells.append(f"{_ms(r['derived']['p50_ms'])} / {_ms(r['pgw']['p50_ms'])}: {_who(r.get('x_pgw_p50'))}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rows = []
    for run in runs:
        m = run["meta"]
        adh = [q["x_pgw_p50"] for q in run.get("adhoc", []) if q.get("x_pgw_p50")]
        agg = [r["x_pgw_p50"] for r in run["reports"] if r["kind"] == "aggregate" and r.get("x_pgw_p50")]
        pages = [p["p95_ms"] for p in run.get("pages", []) if "p95_ms" in p]
        ing = run.get("pg_ingest") or {}
        ch_rate = m["tasks"] / m["insert_seconds"] if m.get("insert_seconds") else None
        like = sum(t["bytes"] for t in run["storage"]["tables"] if not t["table"].startswith(m["otel_db"] + ".")
                   and not t["table"].endswith(".chat_calls"))
        well = run.get("pgw_storage") or {}
        trgm = well.get("task_history_indexes", {}).get("task_history_input_trgm", 0)
        well_total = sum(v["total"] for k, v in well.items() if k != "task_history_indexes") - trgm if well else None
        rows.append((
            f"{m['tasks']:,}",
            _who(statistics.geometric_mean(agg)) if agg else "n/a",
            _who(statistics.geometric_mean(adh)) if adh else "n/a",
            _ms(max(pages)) if pages else "not measured",
            f"{ch_rate:,.0f} / {ing['with_summaries_tasks_per_s']:,.0f}" if ch_rate and ing else "n/a",
            f"{like / m['tasks']:,.0f} / {well_total / m['tasks']:,.0f}" if well_total else "n/a",
        ))
    lines += ["", "| tasks | aggregate reports, geometric mean | ad-hoc queries, geometric mean | slowest page p95 ms "
                  "| ingest tasks/s, swarmlens / PG done well | bytes per task like for like, swarmlens / PG done well |",
              "|---:|---|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="--json files of bench_reports.py runs")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--docs", default=DOCS)
    args = ap.parse_args()
    runs = []
    for path in args.json:
        with open(path) as f:
            runs.append(json.load(f))
    text = section(runs)
    print(text)
    if args.write_docs:
        write_section(args.docs, HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
