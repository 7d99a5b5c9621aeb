"""The ClickHouse client every part of swarmlens uses, and the errors it raises.

One way in: ``connect(config)`` gives a clickhouse-connect client over the HTTP interface, from
SWARMLENS_CLICKHOUSE_URL / _USER / _PASSWORD, the same for the embedded endpoint and a real server.
Queries live in ``.sql`` files under ``store/queries`` and take server-side typed parameters
(``{user:String}``, ``{start:DateTime64(3)}``); ``query_file`` runs one. Values are never formatted
into SQL text.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from swarmlens.errors import SwarmlensError

QUERIES_PACKAGE = "swarmlens.store"
QUERIES_DIR = "queries"


class StoreError(SwarmlensError):
    """Base of every error swarmlens' store raises. ``code`` is ClickHouse's error code when known."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class StoreUnavailable(StoreError):
    status = 503
    """ClickHouse cannot be reached at the configured URL, or refused the credentials."""


class QueryError(StoreError):
    """The server rejected a statement: bad SQL, unknown table, wrong parameter type, and so on."""


class MigrationError(StoreError):
    """The schema cannot be brought up to date: a changed migration file, a failed statement, a server
    too old for the schema."""


# ClickHouse codes meaning "you may not", which a user fixes in the credentials, not in the SQL.
_AUTH_CODES = {192, 193, 194, 195, 516}


def raise_as_store_error(exc: BaseException) -> None:
    """Re-raises a clickhouse-connect exception as the matching StoreError."""
    from clickhouse_connect.driver import exceptions as cc

    if isinstance(exc, StoreError):
        raise exc
    code = getattr(exc, "code", None)
    message = cc.scrub_error_details(str(exc)) if str(exc) else exc.__class__.__name__
    if code in _AUTH_CODES:
        raise StoreUnavailable(message, code=code) from exc
    if isinstance(exc, cc.OperationalError) and code is None:
        raise StoreUnavailable(message) from exc
    if isinstance(exc, cc.Error):
        raise QueryError(message, code=code) from exc
    raise exc


def client_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """The clickhouse-connect ``get_client`` arguments for a config (URL, user, password)."""
    url = config["SWARMLENS_CLICKHOUSE_URL"]
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreUnavailable(f"SWARMLENS_CLICKHOUSE_URL must look like http://host:8123, not {url!r}")
    args: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "secure": parts.scheme == "https",
        "username": unquote(parts.username) if parts.username else config.get("SWARMLENS_CLICKHOUSE_USER") or "default",
        "password": unquote(parts.password) if parts.password else config.get("SWARMLENS_CLICKHOUSE_PASSWORD") or "",
        # A client is shared by threads (reporter workers); a session id would make the server
        # refuse concurrent queries on the same session, and nothing here needs session state.
        "autogenerate_session_id": False,
    }
    if parts.path.strip("/"):
        args["proxy_path"] = parts.path.rstrip("/")
    return args


def connect(config: Mapping[str, Any], **overrides: Any):
    """A clickhouse-connect client for the configured server; raises StoreUnavailable if unreachable.

    ``overrides`` go to ``clickhouse_connect.get_client`` as they are (``database=``, ``settings=``,
    ``compress=``...).
    """
    import clickhouse_connect

    args = client_arguments(config)
    args.update(overrides)
    try:
        return clickhouse_connect.get_client(**args)
    except Exception as exc:
        url = config["SWARMLENS_CLICKHOUSE_URL"]
        try:
            raise_as_store_error(exc)
        except StoreError as err:
            if isinstance(err, StoreUnavailable):
                raise StoreUnavailable(unavailable_message(url, err), code=err.code) from None
            raise


def unavailable_message(url: str, err: StoreError) -> str:
    """One line a person can act on: what failed, and the setting (or flag) that fixes it."""
    text = str(err)
    if err.code in _AUTH_CODES:
        first = text.strip().splitlines()[0][:200] if text.strip() else "authentication failed"
        return (f"ClickHouse at {url} refused the credentials ({first}); set --clickhouse-user and "
                f"--clickhouse-password, or SWARMLENS_CLICKHOUSE_USER and SWARMLENS_CLICKHOUSE_PASSWORD")
    reason = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
    why = reason.group(1).strip() if reason else ("timed out" if "timed out" in text.lower() else text[:200])
    return (f"cannot reach ClickHouse at {url} ({why}); set --clickhouse-url or SWARMLENS_CLICKHOUSE_URL "
            f"to the address `swarmlens up` prints")


_IDENTIFIER_PARAMS = {"db": "SWARMLENS_DATABASE", "otel": "SWARMLENS_OTEL_DATABASE"}


def read_query(name: str | Path) -> str:
    """The text of ``store/queries/NAME.sql``, or of a path given as a Path."""
    if isinstance(name, Path):
        return name.read_text(encoding="utf-8")
    if not re.match(r"^[A-Za-z0-9_]+$", name):
        raise ValueError(f"query names are file stems such as 'task_history', not {name!r}")
    return resources.files(QUERIES_PACKAGE).joinpath(QUERIES_DIR, f"{name}.sql").read_text(encoding="utf-8")


def query_file(client, name: str | Path, parameters: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None, **kwargs: Any):
    """Runs a query file with server-side typed parameters and returns clickhouse-connect's QueryResult.

    Queries name tables as ``{db:Identifier}.tasks`` and ``{otel:Identifier}.otel_traces``; those two
    parameters are filled from ``config`` (the configured database names) unless given. Every other
    value is a ``{name:Type}`` parameter the server binds. ``kwargs`` go to ``client.query``
    (``settings=``, ``column_formats=``...). Within a reporter GET request a read-only query may be
    answered from memory while nothing it reads has changed (swarmlens.store.readcache).
    """
    sql = read_query(name)
    params = dict(parameters or {})
    if config is not None:
        for param, setting in _IDENTIFIER_PARAMS.items():
            if param not in params and "{" + param + ":Identifier}" in sql:
                params[param] = config[setting]
    from swarmlens.store import readcache

    try:
        return readcache.cached_query(client, sql, params, kwargs,
                                      lambda: client.query(sql, parameters=params, **kwargs))
    except Exception as exc:
        raise_as_store_error(exc)
