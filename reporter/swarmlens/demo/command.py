"""`swarmlens demo`: Swarm agents of a SaaS support desk answering demo customers.

The agents are real ``swarm.Agent`` objects run by ``swarm.Swarm`` against the scripted LLM
(started in this process), and the process is instrumented exactly as an application would be:
with ``import opentelemetry.instrumentation.openai_swarm.auto``, configured through the standard
``OTEL_*`` variables. Spans therefore reach the collector over OTLP like any app's.

Defaults the command sets when the environment does not: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (from
``--otlp-endpoint``, else rotel's OTLP/HTTP port of ``swarmlens up``), ``OTEL_SERVICE_NAME=
swarmlens-demo`` and ``OTEL_BSP_SCHEDULE_DELAY=500`` (spans leave the app within half a second:
the "demo settings" of the freshness benchmark).

``--backfill-days D`` stamps the tasks over the past D days (see ``backfill.py``: a demo-only
time shift at export). ``--forever`` keeps one task going every ``--interval`` seconds after the
first ``--tasks``, until SIGTERM or Ctrl-C; ``swarmlens up --demo`` runs that.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import signal
import sys
import threading
import time

from swarmlens import config as config_mod


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=int, default=100, metavar="N", help="tasks to run (default: 100)")
    p.add_argument("--users", type=int, default=12, metavar="M", help="distinct users they come from (default: 12)")
    p.add_argument("--concurrency", type=int, default=4, help="tasks running at once (default: 4)")
    p.add_argument("--stream-ratio", type=float, default=0.3, metavar="R",
                   help="share of tasks run with stream=True (default: 0.3)")
    p.add_argument("--seed", type=int, default=7, help="seed of the task plan (default: 7)")
    p.add_argument("--backfill-days", type=float, default=0, metavar="DAYS",
                   help="spread the tasks' timestamps over the past DAYS days (demo-only time shift; default: 0, now)")
    p.add_argument("--forever", action="store_true",
                   help="after the tasks, keep running one task every --interval seconds until stopped")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="pause between tasks in --forever mode (default: 2)")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="OTLP/HTTP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT, else "
                        "http://127.0.0.1:SWARMLENS_OTLP_HTTP_PORT)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    p.add_argument("--llm-port", type=int, default=0, metavar="PORT",
                   help="port of the demo's scripted LLM on 127.0.0.1 (default: 0, a free port)")
    p.add_argument("--showcase", action="store_true",
                   help="after the first tasks, write what apps and people add over time so that every page "
                        "shows something: feedback votes, and a plan that puts one user near quota (writes to "
                        "ClickHouse at SWARMLENS_CLICKHOUSE_URL; `swarmlens up --demo` does it on an empty database)")


def _configure_otel(args: argparse.Namespace):
    """Environment defaults, the demo-only provider for backfill, then the zero-config import."""
    cfg = config_mod.load()
    if args.otlp_endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
    os.environ.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{cfg.SWARMLENS_OTLP_HTTP_PORT}")
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    os.environ.setdefault("OTEL_SERVICE_NAME", "swarmlens-demo")
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")
    if args.backfill_days > 0:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from swarmlens.demo.backfill import ShiftingExporter, TimeShift

        clock = TimeShift()
        provider = TracerProvider(resource=Resource.create())
        provider.add_span_processor(clock)
        provider.add_span_processor(BatchSpanProcessor(ShiftingExporter(OTLPSpanExporter(), clock)))
        trace.set_tracer_provider(provider)
    import opentelemetry.instrumentation.openai_swarm.auto  # noqa: F401  (the zero-config import)
    from opentelemetry import trace

    return trace.get_tracer_provider(), os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]


class DemoRunner:
    """Runs planned tasks through Swarm; thread-safe counts of what happened."""

    def __init__(self, swarm, agents, stop: threading.Event):
        self.swarm = swarm
        self.agents = agents
        self.stop = stop
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "failed": 0, "unexpected": 0, "streamed": 0, "skipped": 0}
        self.first_unexpected = ""

    def run_task(self, task) -> str:
        from swarmlens.demo.backfill import OFFSET_NS

        if self.stop.is_set():
            outcome = "skipped"
        else:
            token = OFFSET_NS.set(int(task.offset_seconds * 1e9))
            try:
                # The ticket number makes each conversation's opening unique: the scripted LLM tells
                # concurrent tasks apart by it, and two customers asking the same thing at once
                # would otherwise share one count of replies.
                response = self.swarm.run(
                    agent=self.agents[task.start_agent],
                    messages=[{"role": "user", "content": f"Ticket {task.index + 1001}: {task.message}"}],
                    context_variables={"user_id": task.user_id, "session_id": task.session_id},
                    stream=task.stream, max_turns=20)
                if task.stream:
                    for _ in response:
                        pass
                outcome = "ok" if not task.scenario.failing else "unexpected"
                detail = f"{task.scenario.name} did not fail as scripted"
            except Exception as exc:  # failures are part of the demo; unexpected ones are reported
                expected = task.scenario.failing and type(exc).__name__ == task.scenario.failing
                outcome = "failed" if expected else "unexpected"
                detail = f"{task.scenario.name}: {type(exc).__name__}: {exc}"
            finally:
                OFFSET_NS.reset(token)
            if outcome == "unexpected" and not self.first_unexpected:
                self.first_unexpected = detail
        task.outcome = outcome
        with self.lock:
            self.counts[outcome] += 1
            if task.stream and outcome != "skipped":
                self.counts["streamed"] += 1
        return outcome


def run(args: argparse.Namespace) -> int:
    # Ctrl-C or SIGTERM, from the first moment: finish the tasks running, skip the rest, flush the
    # spans, print the summary and exit 0 (a stop is not a failure).
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    provider, endpoint = _configure_otel(args)

    import openai
    from swarm import Swarm

    from swarmlens.demo.agents import build_agents
    from swarmlens.demo.scenarios import build_script, plan
    from swarmlens.scripted_llm import ScriptedLLMServer

    try:
        llm = ScriptedLLMServer(build_script(), port=args.llm_port).start()
    except OSError as exc:
        print(f"swarmlens demo: the scripted LLM cannot listen on 127.0.0.1:{args.llm_port} ({exc.strerror}); "
              f"choose another --llm-port, or 0 for a free one", file=sys.stderr)
        return 2
    client = openai.OpenAI(base_url=llm.url, api_key="swarmlens-demo", max_retries=0, timeout=30)
    runner = DemoRunner(Swarm(client), build_agents(), stop)
    started = time.monotonic()
    tasks = plan(args.tasks, args.users, seed=args.seed, stream_ratio=args.stream_ratio,
                 backfill_days=args.backfill_days)
    when = f" over the past {args.backfill_days:g} days" if args.backfill_days > 0 else ""
    print(f"demo: {len(tasks)} tasks for {args.users} users{when}, spans to {endpoint}, scripted LLM at {llm.url}",
          flush=True)
    near_quota = None
    try:
        _run_batch(runner, tasks, args)
        done = len(tasks)
        if args.showcase and not stop.is_set():
            if hasattr(provider, "force_flush"):
                provider.force_flush(30000)
            from swarmlens.demo.seed import showcase

            lines, near_quota = showcase(tasks, args.users, stop, interval=args.interval)
            for line in lines:
                print(f"demo: {line}", flush=True)
        if args.forever and not stop.is_set():
            print(f"demo: running a task every {args.interval:g} s until stopped", flush=True)
            while not stop.wait(args.interval):
                (task,) = plan(1, args.users, seed=args.seed, stream_ratio=args.stream_ratio, start_index=done)
                if task.user_id == near_quota:
                    # The showcase's user near quota pauses, so the first pages show them near it
                    # rather than over it a minute later.
                    done += 1
                    continue
                runner.run_task(task)
                done += 1
                if done % 100 == 0:
                    llm.reset()  # forget received requests: the server keeps them for tests
                    c = runner.counts
                    print(f"demo: {done} tasks so far ({c['ok']} ok, {c['failed']} failed as scripted)", flush=True)
    finally:
        flushed = provider.force_flush(30000) if hasattr(provider, "force_flush") else True
        llm.stop()
    c = runner.counts
    elapsed = time.monotonic() - started
    ran = c["ok"] + c["failed"] + c["unexpected"]
    summary = (f"demo: {ran} tasks in {elapsed:.1f} s: {c['ok']} ok, {c['failed']} failed as scripted, "
               f"{c['streamed']} streamed" + (f", {c['skipped']} skipped (stopped)" if c["skipped"] else "")
               + ("" if flushed else "; WARNING: spans not all flushed"))
    print(summary, flush=True)
    if c["unexpected"]:
        print(f"demo: {c['unexpected']} tasks went wrong unexpectedly, first: {runner.first_unexpected}",
              file=sys.stderr, flush=True)
        return 1
    return 0


def _run_batch(runner: DemoRunner, tasks: list, args: argparse.Namespace) -> None:
    if not tasks:
        return
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="task", desc="demo", dynamic_ncols=True)
    pool = cf.ThreadPoolExecutor(max_workers=max(1, args.concurrency), thread_name_prefix="demo")
    try:
        pending = {pool.submit(runner.run_task, t) for t in tasks}
        reported = 0
        while pending:
            finished, pending = cf.wait(pending, timeout=0.5)
            for f in finished:
                f.result()
            if bar is not None:
                bar.update(len(finished))
                c = runner.counts
                bar.set_postfix(ok=c["ok"], failed=c["failed"], refresh=False)
            else:
                reported += len(finished)
                if reported and reported % 100 < len(finished):
                    print(f"demo: {reported}/{len(tasks)} tasks", flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
