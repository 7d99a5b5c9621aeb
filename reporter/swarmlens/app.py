"""The reporter: a Flask app over swarmlens' derived tables.

``create_app(config=None)`` reads every setting from the environment (swarmlens.config), applies
``config`` (a mapping of SWARMLENS_* settings, and Flask keys such as TESTING) on top, and registers
one blueprint per area. Each view builds a plain dict and serves it as HTML or, with
``?format=json``, as JSON (see swarmlens.web.common.page). The ClickHouse client of a request is
cached on ``flask.g`` and handed back on teardown.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

log = logging.getLogger(__name__)


class JSONProvider(DefaultJSONProvider):
    """RFC 3339 timestamps (always with their zone, UTC), ISO 8601 dates and plain numbers for
    Decimals, so JSON pages read like the HTML ones and match the OpenAPI ``date-time`` format."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            # ClickHouse columns without a zone come back naive; every stored time is UTC.
            if o.tzinfo is None:
                o = o.replace(tzinfo=timezone.utc)
            return o.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        if isinstance(o, date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return float(o)
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        return DefaultJSONProvider.default(o)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    from swarmlens import auth
    from swarmlens import config as settings
    from swarmlens.web import register
    from swarmlens.store import readcache
    from swarmlens.web.common import ClientPool

    given = dict(config or {})
    swarmlens_config = settings.load({k: v for k, v in given.items() if k.startswith("SWARMLENS_")})

    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.from_mapping(swarmlens_config)
    app.config.update(
        SWARMLENS=swarmlens_config,
        SECRET_KEY=auth.secret_key(swarmlens_config),
        SESSION_COOKIE_NAME="swarmlens_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(swarmlens_config["SWARMLENS_SECURE_COOKIES"]),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=max(1, int(swarmlens_config["SWARMLENS_SESSION_HOURS"]))),
        MAX_CONTENT_LENGTH=int(swarmlens_config["SWARMLENS_MAX_REQUEST_BYTES"]),
        MAX_FORM_MEMORY_SIZE=int(swarmlens_config["SWARMLENS_MAX_REQUEST_BYTES"]),
    )
    app.config.from_mapping({k: v for k, v in given.items() if not k.startswith("SWARMLENS_")})
    app.extensions["swarmlens_pool"] = ClientPool(swarmlens_config)
    app.extensions["swarmlens_read_cache"] = readcache.ReadCache(
        int(swarmlens_config.get("SWARMLENS_REPORTER_CACHE_BYTES") or 0),
        float(swarmlens_config.get("SWARMLENS_REPORTER_CACHE_SECONDS") or 0))

    @app.before_request
    def _read_snapshot() -> None:
        # Reads of GET and HEAD requests may reuse results of unchanged data; a request that
        # writes always reads from the server.
        if request.method in ("GET", "HEAD"):
            g.read_snapshot = readcache.begin(readcache.Snapshot(app.extensions["swarmlens_read_cache"],
                                                                 swarmlens_config))

    @app.teardown_request
    def _end_snapshot(exc: BaseException | None) -> None:
        token = g.pop("read_snapshot", None)
        if token is not None:
            readcache.end(token)

    register(app)

    @app.teardown_appcontext
    def _release_client(exc: BaseException | None) -> None:
        client = g.pop("client", None)
        if client is not None:
            app.extensions["swarmlens_pool"].release(client, broken=exc is not None)

    return app
