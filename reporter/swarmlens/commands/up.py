"""`swarmlens up`: the whole single-machine stack as one process tree (swarmlens.stack)."""

from __future__ import annotations

import argparse
import signal
import sys

from swarmlens import config as config_mod


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where ClickHouse data, the ingest log, logs and the admin credentials live "
                                      "(default: SWARMLENS_DATA_DIR, ~/.local/share/swarmlens)")
    p.add_argument("--clickhouse-port", type=int, metavar="PORT",
                   help="embedded ClickHouse HTTP port (default: SWARMLENS_CLICKHOUSE_LISTEN_PORT, 8123)")
    p.add_argument("--otlp-host", metavar="HOST", help="address of the OTLP receivers (default: SWARMLENS_OTLP_HOST)")
    p.add_argument("--otlp-grpc-port", type=int, metavar="PORT",
                   help="OTLP/gRPC port (default: SWARMLENS_OTLP_GRPC_PORT, 4317)")
    p.add_argument("--otlp-http-port", type=int, metavar="PORT",
                   help="OTLP/HTTP port (default: SWARMLENS_OTLP_HTTP_PORT, 4318)")
    p.add_argument("--host", metavar="HOST", help="address of the reporter (default: SWARMLENS_REPORTER_HOST)")
    p.add_argument("--port", type=int, metavar="PORT", help="port of the reporter (default: SWARMLENS_REPORTER_PORT, 8000)")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: SWARMLENS_REPORTER_WORKERS)")
    p.add_argument("--demo", action="store_true", help="keep demo traffic flowing (swarmlens demo --forever; needs swarmlens[demo])")
    p.add_argument("--demo-interval", type=float, default=2.0, metavar="SECONDS",
                   help="pause between demo tasks (default: 2)")
    p.add_argument("--demo-backfill-days", type=int, default=90, metavar="DAYS",
                   help="on an empty database, --demo first backfills this many days of history (default: 90; 0: none)")
    p.add_argument("--demo-backfill-tasks", type=int, default=600, metavar="N",
                   help="tasks of that backfill (default: 600)")
    p.add_argument("--demo-llm-port", type=int, default=0, metavar="PORT",
                   help="port of the demo's scripted LLM on 127.0.0.1 (default: a free port)")


class _Stop(Exception):
    """Raised in the main thread by SIGTERM / SIGINT."""


def run(args: argparse.Namespace) -> int:
    from swarmlens.commands.common import demo_extra_missing

    if args.demo and (missing := demo_extra_missing("up --demo")):
        print(missing, file=sys.stderr)
        return 2
    from swarmlens.ingest.collectors import CollectorError
    from swarmlens.stack import StackError
    from swarmlens.stack.supervisor import Stack
    from swarmlens.store.client import StoreError

    try:
        cfg = config_mod.load({
            "SWARMLENS_DATA_DIR": args.data_dir, "SWARMLENS_CLICKHOUSE_LISTEN_PORT": args.clickhouse_port,
            "SWARMLENS_OTLP_HOST": args.otlp_host, "SWARMLENS_OTLP_GRPC_PORT": args.otlp_grpc_port,
            "SWARMLENS_OTLP_HTTP_PORT": args.otlp_http_port, "SWARMLENS_REPORTER_HOST": args.host,
            "SWARMLENS_REPORTER_PORT": args.port, "SWARMLENS_REPORTER_WORKERS": args.workers,
        })
    except (ValueError, KeyError) as exc:
        print(f"swarmlens up: {exc}", file=sys.stderr)
        return 2
    stack = Stack(cfg, cfg.SWARMLENS_DATA_DIR, demo=args.demo, demo_interval=args.demo_interval,
                  demo_backfill_days=args.demo_backfill_days, demo_backfill_tasks=args.demo_backfill_tasks,
                  say=lambda line: print(line, flush=True))
    stack.demo_llm_port = args.demo_llm_port

    def on_signal(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        stack.start()
        status = stack.watch()
    except _Stop as exc:
        print(f"swarmlens up: {exc}, stopping", flush=True)
    except (StackError, StoreError, CollectorError, OSError, ValueError) as exc:
        print(f"swarmlens up: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        # Further signals must not interrupt the orderly stop.
        for sig in previous:
            signal.signal(sig, lambda s, f: print("swarmlens up: still stopping...", flush=True))
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("swarmlens up: stopped" + ("" if status == 0 else f" (status {status})"), flush=True)
    return status
