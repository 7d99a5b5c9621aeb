"""What every view uses: the request's ClickHouse client, the caller, parameter parsing, and
``page()``, which serves a view's dict as HTML or as JSON."""

from __future__ import annotations

import base64
import functools
import threading
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping

from flask import abort, current_app, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest

from swarmlens.errors import InvalidInput
from swarmlens.reports import common as rc


class ClientPool:
    """clickhouse-connect clients kept between requests, and whether ClickHouse answers at all.

    Opening a client costs three round trips (version, settings, a check): about 100 ms on the
    embedded endpoint, most of a page's budget. So a request borrows an open client (cached on
    ``g``) and gives it back on teardown; a client that saw an error is closed instead.

    Every query of the reporter runs under ClickHouse's own limits (max_execution_time from
    SWARMLENS_QUERY_TIMEOUT_SECONDS, max_memory_usage from SWARMLENS_QUERY_MAX_MEMORY_BYTES), and
    the HTTP read gives up a few seconds after the server should have. A stopped or stalled server
    would still hold each request for that long, so ``acquire`` first asks ``/ping`` with a short
    timeout (SWARMLENS_CLICKHOUSE_PING_SECONDS). The answer is remembered for PING_CACHE_SECONDS, so
    a busy reporter pings a few times a second at most, and while ClickHouse is down every data
    page fails at once with StoreUnavailable (a 503) instead of queueing behind a dead server.
    """

    PING_CACHE_SECONDS = 0.5

    def __init__(self, config: Mapping[str, Any], keep: int = 8):
        self.config = config
        self.keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._reachable: str | None = None  # None: reachable; else why not
        self._slow_since: float | None = None  # when /ping began to miss its timeout

    def client_options(self) -> dict[str, Any]:
        cfg = self.config
        limit = max(1, int(cfg.get("SWARMLENS_QUERY_TIMEOUT_SECONDS") or 30))
        settings: dict[str, Any] = {"max_execution_time": limit}
        memory = int(cfg.get("SWARMLENS_QUERY_MAX_MEMORY_BYTES") or 0)
        if memory > 0:
            settings["max_memory_usage"] = memory
        ping = float(cfg.get("SWARMLENS_CLICKHOUSE_PING_SECONDS") or 1.0)
        return {"settings": settings, "connect_timeout": max(1, int(ping + 0.999)),
                "send_receive_timeout": limit + 5}

    def ping(self, timeout: float | None = None) -> str | None:
        """None when ClickHouse answers ``/ping`` within the timeout, else the reason it did not."""
        return self._ping(timeout)[1]

    def _ping(self, timeout: float | None = None) -> tuple[str, str | None]:
        """("ok", None), ("slow", why) when the timeout passed, or ("down", why): refused, an error."""
        import urllib.error
        import urllib.request

        from swarmlens.store.client import client_arguments

        args = client_arguments(self.config)
        scheme = "https" if args["secure"] else "http"
        url = f"{scheme}://{args['host']}:{args['port']}{args.get('proxy_path', '')}/ping"
        wait = float(self.config.get("SWARMLENS_CLICKHOUSE_PING_SECONDS") or 1.0) if timeout is None else timeout
        try:
            with urllib.request.urlopen(url, timeout=wait) as resp:  # noqa: S310 (URL from settings)
                resp.read(64)
            return "ok", None
        except urllib.error.HTTPError as exc:
            return "down", f"ClickHouse answered {exc.code} to /ping"
        except Exception as exc:  # refused, reset, timed out: all mean "not now"
            timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError) \
                or "timed out" in str(exc)
            return ("slow" if timed_out else "down"), \
                f"ClickHouse did not answer /ping within {wait:g} s ({exc.__class__.__name__})"

    def health(self, timeout: float | None = None) -> str | None:
        """None while ClickHouse is usable: it answered, or it has been missing the ping's timeout for
        less than SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS (a loaded machine, not a dead server);
        else why not. A refused connection or an error answer counts at once."""
        import time

        kind, reason = self._ping(timeout)
        now = time.monotonic()
        if kind == "ok":
            self._slow_since = None
            return None
        if kind == "slow":
            if self._slow_since is None:
                self._slow_since = now
            grace = float(self.config.get("SWARMLENS_CLICKHOUSE_SLOW_GRACE_SECONDS") or 0)
            if now - self._slow_since < grace:
                return None
            return f"{reason}, for {now - self._slow_since:.0f} s"
        return reason

    def check_reachable(self) -> None:
        """Raises StoreUnavailable when ClickHouse did not answer its last health check."""
        import time

        from swarmlens.store.client import StoreUnavailable

        now = time.monotonic()
        if now - self._checked_at >= self.PING_CACHE_SECONDS:
            reason = self.health()
            self._reachable, self._checked_at = reason, time.monotonic()
        if self._reachable is not None:
            raise StoreUnavailable(self._reachable)

    def suspect(self) -> None:
        """A query just failed to reach ClickHouse: check again before the next request uses it
        (unless the last check already found it down: that answer stands until it expires)."""
        if self._reachable is None:
            self._checked_at = -1e9

    def acquire(self):
        self.check_reachable()
        with self._lock:
            if self._idle:
                return self._idle.pop()
        from swarmlens.store.client import connect

        return connect(self.config, **self.client_options())

    def release(self, client, broken: bool = False) -> None:
        with self._lock:
            if not broken and len(self._idle) < self.keep:
                self._idle.append(client)
                return
        try:
            client.close()
        except Exception:  # closing a broken client must not hide the request's own outcome
            pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()


def client():
    if "client" not in g:
        g.client = current_app.extensions["swarmlens_pool"].acquire()
    return g.client


def config() -> Mapping[str, Any]:
    return current_app.config["SWARMLENS"]


def principal():
    return g.get("principal")


# ---------------------------------------------------------------------------------------------
# Serving a view's dict


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.args.get("format") == "json"


def page(template: str, ctx: dict[str, Any], status: int = 200):
    """The same dict as JSON (``?format=json``) or rendered by ``template``."""
    fmt = request.args.get("format", "html")
    if fmt == "json":
        return jsonify(ctx), status
    if fmt != "html":
        abort(400, description="format must be html or json")
    return render_template(template, **ctx), status


# ---------------------------------------------------------------------------------------------
# Access


def requires(kind: str = "any") -> Callable:
    """Guards a view: ``any`` signed-in principal, or ``ops`` only. Anonymous browsers are sent to
    /login; JSON callers get 401; a user on an ops page gets 403."""

    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            who = principal()
            if who is None:
                if wants_json() or request.method != "GET":
                    abort(401, description="sign in, or send an API token as 'Authorization: Bearer ...'")
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if kind == "ops" and not who.is_ops:
                abort(403, description="this page is for ops accounts")
            return view(*args, **kwargs)

        guarded.required_kind = kind
        return guarded

    return wrap


def check_user_access(user_id: str) -> None:
    """404 for a user's page another user asks for: not even its existence is revealed."""
    who = principal()
    if not who.can_see_user(user_id):
        abort(404, description="no such user")


# ---------------------------------------------------------------------------------------------
# Parameters: every bad value is a 400 with a message that says what is expected


class InvalidParameter(BadRequest, InvalidInput):
    """A value of the query string a page cannot use (a reversed date range, an unknown choice).
    ``field`` names the parameter, so that a page can show its form again with the message beside
    that field (``form_page``); elsewhere it is a plain 400."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(description=message)
        self.field = field


def bad(message: str, field: str | None = None):
    raise InvalidParameter(message, field)


def form_page(template: str, build: Callable[[], dict[str, Any]], form: Callable[[], dict[str, Any]]):
    """``page(template, build())``; when a filter is invalid, the page's form again with status 400:
    ``form()`` gives what the form needs, its values as typed, and ``errors`` maps the field to its
    message (``"form"`` when the parameter has no field of its own). The template shows only the
    form when ``errors`` is set. JSON callers keep the JSON error."""
    try:
        ctx = build()
    except InvalidParameter as exc:
        if wants_json():
            raise
        ctx = form()
        ctx["errors"] = {exc.field or "form": exc.description}
        return page(template, ctx, 400)
    return page(template, ctx)


def typed(*names: str) -> dict[str, str]:
    """The query string's values as the user typed them (cut to a sane length), for a form shown
    again; the template escapes them."""
    return {name: (request.args.get(name) or "")[:200] for name in names}


def arg_int(name: str, default: int, minimum: int = 1, maximum: int = 1000) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        bad(f"{name} must be a whole number, not {raw[:20]!r}", name)
    if not minimum <= value <= maximum:
        bad(f"{name} must be between {minimum} and {maximum}", name)
    return value


def arg_choice(name: str, choices: list[str] | tuple[str, ...] | dict, default: str) -> str:
    raw = request.args.get(name) or default
    if raw not in choices:
        bad(f"{name} must be one of {', '.join(c for c in choices if c)}, not {raw[:30]!r}", name)
    return raw


def arg_text(name: str, max_len: int = 200) -> str:
    raw = (request.args.get(name) or "").strip()
    if len(raw) > max_len:
        bad(f"{name} is longer than {max_len} characters", name)
    if "\x00" in raw:
        bad(f"{name} contains a NUL character", name)
    return raw


def period_or_400(fn: Callable[..., rc.Period], *args, field: str | None = None) -> rc.Period:
    try:
        return fn(*args)
    except ValueError as exc:
        bad(str(exc), getattr(exc, "field", None) or field)


# Keyset cursors: the (start_time, task_id) of the last row shown, opaque to callers.

def encode_cursor(start_time: datetime, task_id: str) -> str:
    if start_time.tzinfo is None:
        start_time = start_time.replace(tzinfo=timezone.utc)
    raw = f"{start_time.astimezone(timezone.utc).isoformat(timespec='milliseconds')}|{task_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        ts, task_id = raw.split("|", 1)
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        rc.check_date(when.astimezone(timezone.utc).date(), "cursor")
        if len(task_id) > 64:
            raise ValueError
        return when, task_id
    except (ValueError, UnicodeDecodeError, OverflowError):
        bad("cursor is not valid: use the next_cursor of a previous page", "cursor")


def keyset_params(cursor: tuple[datetime, str] | None) -> dict[str, Any]:
    if cursor is None:
        return {"has_cursor": 0, "cursor_time": datetime(1970, 1, 1, tzinfo=timezone.utc), "cursor_id": ""}
    return {"has_cursor": 1, "cursor_time": cursor[0], "cursor_id": cursor[1]}


def next_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    """Cuts rows (queried with limit + 1) to limit; the cursor of the next page if there is one."""
    if len(rows) <= limit:
        return None
    del rows[limit:]
    last = rows[-1]
    return encode_cursor(last["start_time"], last["task_id"])


def to_date(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else value.date()
