"""Sessions and the connection pool: which engine connection a request runs on, and how it is given back.

A request without a session takes a pooled connection (the engine brings it to the request's
settings and database) and gives it back, or closes it when a statement changed it in ways no
reset undoes (SET, USE, temporary tables, external data) or the request failed mid-change. A
request with `session_id` holds its session's connection for its duration (Code 373 for a
concurrent one); sessions belong to their user, time out as on a server (`session_timeout`, at
most MAX_SESSION_TIMEOUT) and end with `close_session=1`.
"""

from __future__ import annotations

import math

from swarmlens.embedded.engine import Connection
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.request import int_param, quote_ident
from swarmlens.embedded.sandbox import Statement

# A server's max_session_timeout: a longer session_timeout is refused (Code 374), not shortened.
MAX_SESSION_TIMEOUT = 3600


def session_key(session_id: str | None, user: str) -> str | None:
    """Sessions belong to their user, as on a server: another user's request with the same id
    opens a session of its own."""
    return None if session_id is None else f"{session_id}\x00{user}"


def acquire(ep, params: dict[str, str], user: str) -> tuple[Connection, bool]:
    """The request's connection, and whether it is a session's."""
    session_id = params.get("session_id")
    if not session_id:
        return ep.engine.acquire(), False
    try:
        timeout = float(params.get("session_timeout") or 60)
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout):  # nan would compare false with everything: a session never expiring
        raise ClickHouseError(36, "BAD_ARGUMENTS", "Invalid session timeout")
    if timeout > MAX_SESSION_TIMEOUT:
        raise ClickHouseError(374, "INVALID_SESSION_TIMEOUT",
                              f"Session timeout '{timeout:g}' is larger than max_session_timeout: "
                              f"{MAX_SESSION_TIMEOUT}. Maximum session timeout could be modified in configuration "
                              "file")
    timeout = max(timeout, 1.0)
    for _ in range(3):
        conn = ep.engine.session(session_key(session_id, user), timeout, params.get("session_check") == "1")
        if not conn.lock.acquire(blocking=False):
            raise ClickHouseError(373, "SESSION_IS_LOCKED",
                                  f"Session {session_id[:100]} is locked by a concurrent client")
        if not conn.closed:
            return conn, True
        # closed by the request that held it just before (close_session=1): the id starts a new session
        conn.lock.release()
    raise ClickHouseError(373, "SESSION_IS_LOCKED", f"Session {session_id[:100]} is being closed and reopened")


def give_back(ep, conn: Connection, session: bool, params: dict[str, str], user: str, ok: bool,
              st: Statement | None, external: list, discard: bool) -> None:
    """Ends the request's hold on its connection: a session's keeps its state (less the query's
    external data), a pooled one goes back to the pool unless `discard` or the statement changed it."""
    if session:
        if ok and st is not None and st.stateful:
            conn.note_statement(st.canonical)
        for name, _, _ in external:  # external data lives for its query alone
            try:
                conn.run(f"DROP TEMPORARY TABLE IF EXISTS {quote_ident(name)}", "TabSeparated")
            except ClickHouseError:
                pass
        try:
            close = int_param(params, "close_session") == 1
        except ClickHouseError:
            close = False
        if close:  # before the lock is released: a request waiting for it must not get a closing connection
            ep.engine.close_session(session_key(params.get("session_id"), user), conn)
        conn.lock.release()
    else:
        # a failed request may have left the connection mid-change: never pool it
        ep.engine.release(conn, discard=discard or not ok or (st is not None and st.stateful))
