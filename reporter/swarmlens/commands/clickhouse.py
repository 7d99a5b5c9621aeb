"""`swarmlens clickhouse`: serve the embedded ClickHouse until SIGTERM / Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import sys

from swarmlens import config as config_mod


def add_arguments(p) -> None:
    p.add_argument("--data-dir", help="data directory (default: $SWARMLENS_DATA_DIR/clickhouse)")
    p.add_argument("--host", help="address to bind (default: SWARMLENS_CLICKHOUSE_LISTEN_HOST)")
    p.add_argument("--port", type=int, help="port to bind, 0 for a free one (default: SWARMLENS_CLICKHOUSE_LISTEN_PORT)")
    p.add_argument("--user", help="user clients must give when a password is set (default: SWARMLENS_CLICKHOUSE_USER)")
    p.add_argument("--password-env", metavar="VAR", default="SWARMLENS_CLICKHOUSE_PASSWORD",
                   help="environment variable holding the password (never pass it on the command line); when it is "
                        "unset, a password is generated once and kept in $SWARMLENS_DATA_DIR/clickhouse-password")
    p.add_argument("--verbose", "-v", action="store_true", help="log every request")


def run(args) -> int:
    from swarmlens.embedded.server import EmbeddedClickHouse

    cfg = config_mod.load()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = args.data_dir or os.path.join(cfg.SWARMLENS_DATA_DIR, "clickhouse")
    host = args.host or cfg.SWARMLENS_CLICKHOUSE_LISTEN_HOST
    port = cfg.SWARMLENS_CLICKHOUSE_LISTEN_PORT if args.port is None else args.port
    pw_note = f"password from ${args.password_env}"
    try:
        if args.password_env in os.environ:
            # read, then gone from the environment the engine could otherwise be asked about
            password = os.environ.pop(args.password_env)
        else:
            pw_path = config_mod.clickhouse_password_path(cfg.SWARMLENS_DATA_DIR)
            password = config_mod.clickhouse_password(cfg.SWARMLENS_DATA_DIR)
            pw_note = f"password in {pw_path}"
        ep = EmbeddedClickHouse(
            data_dir, host=host, port=port, user=args.user or cfg.SWARMLENS_CLICKHOUSE_USER,
            password=password, pool_size=cfg.SWARMLENS_CLICKHOUSE_POOL_SIZE,
            max_body_bytes=cfg.SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES,
            max_query_bytes=cfg.SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES,
            user_files_path=cfg.SWARMLENS_CLICKHOUSE_USER_FILES_PATH,
            cors_origin=cfg.SWARMLENS_CLICKHOUSE_CORS_ORIGIN,
            layers=config_mod.layers(cfg.SWARMLENS_CLICKHOUSE_CONFINEMENT), confine=True,
            max_queries_per_user=cfg.SWARMLENS_CLICKHOUSE_MAX_QUERIES_PER_USER,
            queue_seconds=cfg.SWARMLENS_CLICKHOUSE_QUEUE_SECONDS,
            raw_db=cfg.SWARMLENS_OTEL_DATABASE, app_db=cfg.SWARMLENS_DATABASE,
        ).start(background=False)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"swarmlens clickhouse: {exc}", file=sys.stderr)
        return 1
    if not password:
        pw_note = "no password (explicitly empty)"
    print(f"embedded ClickHouse {ep.engine.version} serving {data_dir} at {ep.url}", flush=True)
    print(f"user {ep.user}, {pw_note}", flush=True)
    print(f"confinement: {describe_layers(ep)}", flush=True)
    write_confinement(data_dir, ep)
    closed = ep.serve_forever()
    print("embedded ClickHouse stopped", flush=True)
    if not closed:
        # the engine's threads did not finish: end the process instead of waiting on them (every
        # acknowledged insert is already on disk)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


CONFINEMENT_FILE = "swarmlens-confinement.json"


def describe_layers(ep) -> str:
    kernel = ep.confinement.detail if ep.confinement else "off (SWARMLENS_CLICKHOUSE_CONFINEMENT)"
    return (f"kernel: {kernel}; engine: {'on' if 'engine' in ep.layers else 'off'}; "
            f"statements: {'on' if 'statements' in ep.layers else 'off'}")


def write_confinement(data_dir: str, ep) -> None:
    """What confines the endpoint, for `swarmlens status` (written inside the data directory, the
    one place the endpoint may write)."""
    doc = {"layers": sorted(ep.layers), "pid": os.getpid(),
           "kernel": ep.confinement.as_dict() if ep.confinement else {"kernel": "off"},
           "summary": describe_layers(ep)}
    try:
        with open(os.path.join(data_dir, CONFINEMENT_FILE), "w", encoding="utf-8") as f:
            json.dump(doc, f)
    except OSError as exc:
        print(f"could not record the confinement: {exc}", file=sys.stderr)
