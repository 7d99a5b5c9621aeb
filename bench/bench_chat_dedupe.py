"""What the duplicate check of chat_calls_mv (migration 0014) costs at insert: the time of one insert of
100 Swarm tasks (1,000 spans, 300 model calls) into the embedded engine as chat_calls grows, with the
current schema, or with "before" as the second argument, with chat_calls_mv as migration 0012 made it.
The row counts at the end must be exact either way.

Usage: python -m bench.bench_chat_dedupe BLOCKS [before]    (from the repository root)
"""
import random, sys, time, tempfile
from datetime import datetime, timedelta, timezone
from swarmlens_testing.spans import Stretch, task_spans, insert_spans
from swarmlens import config
from swarmlens.embedded.server import EmbeddedClickHouse
from swarmlens.store.migrate import migrate_from_config
from swarmlens.store.client import connect
import clickhouse_connect

d = tempfile.mkdtemp()
ep = EmbeddedClickHouse(d, port=0).start()
cfg = config.load({"SWARMLENS_CLICKHOUSE_URL": ep.url, "SWARMLENS_DATA_DIR": d})
migrate_from_config(cfg)
c = connect(cfg)
if len(sys.argv) > 2 and sys.argv[2] == "before":
    # chat_calls_mv as migration 0012 made it (no duplicate check), for comparison
    import re
    from pathlib import Path
    sql = Path("reporter/swarmlens/store/schema/0012_framework_neutral_tasks.sql").read_text()
    mv = sql[sql.index("CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.chat_calls_mv"):].rstrip().rstrip(";")
    mv = mv.replace("{{db}}", cfg.SWARMLENS_DATABASE).replace("{{otel}}", cfg.SWARMLENS_OTEL_DATABASE)
    mv = mv.replace("{{on_cluster}}", "").replace("{{local chat_calls}}", "chat_calls").replace("{{local otel_traces}}", "otel_traces")
    c.command(f"DROP VIEW {cfg.SWARMLENS_DATABASE}.chat_calls_mv")
    c.command(mv)
rng = random.Random(1)
start = datetime(2026, 11, 1, tzinfo=timezone.utc)
times = []
blocks = int(sys.argv[1])
for b in range(blocks):
    spans = []
    for i in range(100):
        t = start + timedelta(seconds=b * 100 + i)
        spans += task_spans(user_id=f"u{i % 50}", start=t, rng=rng,
                            stretches=[Stretch("Triage", chats=[(rng.randint(10, 500), 5)], tools=[]),
                                       Stretch("Billing", model="gpt-4o", chats=[(rng.randint(10, 900), 9), (rng.randint(10, 900), 11)])])
    t0 = time.perf_counter()
    insert_spans(c, spans, database=cfg.SWARMLENS_OTEL_DATABASE)
    times.append(time.perf_counter() - t0)
    if b in (0, 9, blocks // 2, blocks - 1):
        n = c.query("SELECT count() FROM {db:Identifier}.chat_calls", parameters={"db": cfg.SWARMLENS_DATABASE}).result_rows[0][0]
        print(f"block {b + 1}: {times[-1] * 1000:.0f} ms (median of last 10: {sorted(times[-10:])[len(times[-10:]) // 2] * 1000:.0f} ms), chat_calls {n}", flush=True)
print("rows:", c.query("SELECT (SELECT count() FROM {db:Identifier}.chat_calls), (SELECT sum(calls) FROM {db:Identifier}.chat_usage_daily), (SELECT count() FROM {db:Identifier}.tasks)", parameters={"db": cfg.SWARMLENS_DATABASE}).result_rows)
c.close(); ep.stop()
