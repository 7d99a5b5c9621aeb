"""Health endpoints for process supervisors and load balancers; neither needs a sign-in.

``/healthz``
    The reporter process is alive and serving. It touches nothing else, so a ClickHouse outage
    never makes a supervisor restart a healthy reporter.
``/readyz``
    The reporter can serve data pages: ClickHouse answers within SWARMLENS_CLICKHOUSE_PING_SECONDS
    and every schema migration is applied. 503 otherwise, with the reason, so a load balancer
    sends no traffic to a reporter whose pages would fail.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz():
    from swarmlens.store import migrate
    from swarmlens.store.client import StoreError
    from swarmlens.web.common import config

    pool = current_app.extensions["swarmlens_pool"]
    reason = pool.ping()
    if reason is not None:
        return jsonify({"status": "unavailable", "clickhouse": "unreachable", "message": reason}), 503
    client = None
    try:
        client = pool.acquire()
        states = migrate.status(client, migrate.Target.from_config(config()))
    except StoreError as exc:
        return jsonify({"status": "unavailable", "clickhouse": "error", "message": str(exc)}), 503
    finally:
        if client is not None:
            pool.release(client)
    waiting = [s.migration.label for s in states if s.state != "applied"]
    if waiting:
        return jsonify({"status": "unavailable", "clickhouse": "ok", "migrations": "pending",
                        "message": f"migrations not applied: {', '.join(waiting)} (run `swarmlens db migrate`)"}), 503
    return jsonify({"status": "ready", "clickhouse": "ok", "migrations": "applied"})
