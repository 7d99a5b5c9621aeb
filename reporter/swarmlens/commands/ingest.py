"""`swarmlens ingest`: receive OTLP traces and insert them into ClickHouse, crash-safe, until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from swarmlens import config as config_mod


def add_arguments(p) -> None:
    p.add_argument("--data-dir", help="where the write-ahead log and status live "
                                      "(default: $SWARMLENS_DATA_DIR/ingest)")
    p.add_argument("--host", help="address of the OTLP receivers (default: SWARMLENS_OTLP_HOST)")
    p.add_argument("--grpc-port", type=int, help="OTLP/gRPC port, 0 for a free one (default: SWARMLENS_OTLP_GRPC_PORT)")
    p.add_argument("--http-port", type=int, help="OTLP/HTTP port, 0 for a free one (default: SWARMLENS_OTLP_HTTP_PORT)")


def run(args) -> int:
    from swarmlens.ingest.server import Ingest

    cfg = config_mod.load()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    directory = args.data_dir or os.path.join(cfg.SWARMLENS_DATA_DIR, "ingest")
    host = args.host or cfg.SWARMLENS_OTLP_HOST
    grpc_port = cfg.SWARMLENS_OTLP_GRPC_PORT if args.grpc_port is None else args.grpc_port
    http_port = cfg.SWARMLENS_OTLP_HTTP_PORT if args.http_port is None else args.http_port
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: stop.set())
    try:
        ingest = Ingest(cfg, directory, batch_seconds=cfg.SWARMLENS_INGEST_BATCH_MS / 1000,
                        max_backlog_bytes=cfg.SWARMLENS_INGEST_MAX_BACKLOG_BYTES,
                        min_free_bytes=cfg.SWARMLENS_INGEST_MIN_FREE_BYTES).start(host, http_port, grpc_port)
    except OSError as exc:
        print(f"swarmlens ingest: {exc}", file=sys.stderr)
        return 1
    pending = ingest.wal.sealed()
    print(f"swarmlens ingest: OTLP/HTTP on {host}:{ingest.http_port}, OTLP/gRPC on {host}:{ingest.grpc_port}, "
          f"inserting into {cfg.SWARMLENS_CLICKHOUSE_URL}; write-ahead log {ingest.wal.directory} "
          f"({len(pending)} segment(s) from before to insert)", flush=True)
    stop.wait()
    print("swarmlens ingest: stopping (inserting what the log holds while ClickHouse answers)", flush=True)
    ingest.stop()
    left = ingest.wal.sealed()
    print(f"swarmlens ingest: stopped; {len(left)} segment(s) left for the next start", flush=True)
    return 0
