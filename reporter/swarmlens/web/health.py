"""Health endpoints for process supervisors and load balancers; neither needs a sign-in.

``/healthz``
    The reporter process is alive and serving. It touches nothing else, so a ClickHouse outage
    never makes a supervisor restart a healthy reporter.
``/readyz``
    The reporter can serve data pages: ClickHouse answers within SWARMLENS_CLICKHOUSE_PING_SECONDS
    (or has been slower than that for less than SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS), every
    schema migration is applied and no part of a table is damaged (``swarmlens.store.health``:
    the engine's own error log and ``CHECK TABLE`` of the suspect part). 503 otherwise, with the
    reason and the damaged table, so a load balancer sends no traffic to a reporter whose pages
    would fail. Parts set aside and failing mutations are listed as warnings with a 200.
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

    from swarmlens.store import health

    pool = current_app.extensions["swarmlens_pool"]
    reason = pool.health()
    if reason is not None:
        return jsonify({"status": "unavailable", "clickhouse": "unreachable", "message": reason}), 503
    client = None
    cfg = config()
    try:
        client = pool.acquire()
        states = migrate.status(client, migrate.Target.from_config(cfg))
        suspects = current_app.extensions.setdefault("swarmlens_damage_suspects", {})
        findings = health.quick_findings(health.runner_for(client),
                                         [cfg["SWARMLENS_OTEL_DATABASE"], cfg["SWARMLENS_DATABASE"]],
                                         list(suspects.values()))
        confirmed = {(f.table, f.part) for f in findings}
        for key in [k for k in list(suspects) if k not in confirmed]:
            suspects.pop(key, None)  # set aside or repaired since
    except StoreError as exc:
        return jsonify({"status": "unavailable", "clickhouse": "error", "message": str(exc)}), 503
    finally:
        if client is not None:
            pool.release(client)
    listed = [{"table": f.table, "part": f.part, "problem": f.problem} for f in findings]
    if any(f.blocking for f in findings):
        return jsonify({"status": "unavailable", "clickhouse": "damaged", "damaged": listed,
                        "message": health.verdict(findings)}), 503
    waiting = [s.migration.label for s in states if s.state != "applied"]
    if waiting:
        return jsonify({"status": "unavailable", "clickhouse": "ok", "migrations": "pending",
                        "message": f"migrations not applied: {', '.join(waiting)} (run `swarmlens db migrate`)"}), 503
    body = {"status": "ready", "clickhouse": "ok", "migrations": "applied"}
    if listed:
        body["warnings"] = listed
    return jsonify(body)
