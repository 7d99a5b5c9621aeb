"""What every view uses: the request's ClickHouse client, the caller, parameter parsing, and
``page()``, which serves a view's dict as HTML or as JSON."""

from __future__ import annotations

import base64
import functools
import threading
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping

from flask import abort, current_app, g, jsonify, redirect, render_template, request, url_for

from swarmlens.reports import common as rc


class ClientPool:
    """clickhouse-connect clients kept between requests.

    Opening a client costs three round trips (version, settings, a check): about 100 ms on the
    embedded endpoint, most of a page's budget. So a request borrows an open client (cached on
    ``g``) and gives it back on teardown; a client that saw an error is closed instead.
    """

    def __init__(self, config: Mapping[str, Any], keep: int = 8):
        self.config = config
        self.keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def acquire(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        from swarmlens.store.client import connect

        return connect(self.config)

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


def bad(message: str):
    abort(400, description=message)


def arg_int(name: str, default: int, minimum: int = 1, maximum: int = 1000) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        bad(f"{name} must be a whole number, not {raw[:20]!r}")
    if not minimum <= value <= maximum:
        bad(f"{name} must be between {minimum} and {maximum}")
    return value


def arg_choice(name: str, choices: list[str] | tuple[str, ...] | dict, default: str) -> str:
    raw = request.args.get(name) or default
    if raw not in choices:
        bad(f"{name} must be one of {', '.join(choices)}, not {raw[:30]!r}")
    return raw


def arg_text(name: str, max_len: int = 200) -> str:
    raw = (request.args.get(name) or "").strip()
    if len(raw) > max_len:
        bad(f"{name} is longer than {max_len} characters")
    if "\x00" in raw:
        bad(f"{name} contains a NUL character")
    return raw


def period_or_400(fn: Callable[..., rc.Period], *args) -> rc.Period:
    try:
        return fn(*args)
    except ValueError as exc:
        bad(str(exc))


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
        if len(task_id) > 64:
            raise ValueError
        return when, task_id
    except (ValueError, UnicodeDecodeError):
        bad("cursor is not valid: use the next_cursor of a previous page")


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
