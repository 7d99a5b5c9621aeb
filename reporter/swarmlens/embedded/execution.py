"""Execution: one query from its parsed request to its answer.

Owns the order of a query's life: the request read (request.py), the user's turn among their
concurrent queries (admission), a connection (sessions.py), the policy's verdict (policy.py),
the query registered under its HTTP query id (cancel.py), then one of: an access statement, a
KILL QUERY, a buffered insert (inserts.py), a streamed or a whole result (results.py); and, just
before the last bytes of the answer leave, the release of all it held.
"""

from __future__ import annotations

import time

from swarmlens import sqltext
from swarmlens.embedded import access, cancel, inserts, policy, request, sessions
from swarmlens.embedded.access import Principal
from swarmlens.embedded.cancel import Running
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.request import Request, Spool, int_param
from swarmlens.embedded.results import STREAMABLE_FORMATS, Results, zlib_level


class Execution:
    """Everything one query needs: its settings, connection, statement, result and headers."""

    def __init__(self, handler, req: Request, params: dict[str, str], query_id: str, who: Principal):
        self.h = handler
        self.ep = handler.ep
        self.req = req
        self.params = params
        self.query_id = query_id
        self.who = who
        self.user = who.name
        self.external: list[tuple[str, dict, Spool]] = []
        self.out = Results(handler, req, params, query_id, self._release)
        self._admitted = False  # counted against the user's concurrent queries

    def run(self) -> None:
        req, params = self.req, self.params
        zlib_level(params)  # refused before anything runs, not when the result is ready
        ctype = (req.header("content-type") or "").lower()
        body = None
        if req.method == "POST" and req.has_body and ctype.startswith("multipart/form-data"):
            request.read_form(self.ep, req, params, self.external)
        try:
            settings, qparams = policy.split_params(self.ep, params, self.external)
            url_query = params.get("query", "")
            head = sqltext.split_data_insert(url_query) if url_query else None
            data = None
            if req.method == "POST" and req.has_body and not req.body_done:
                body = request.read_body(self.ep, req, params)
            if head is not None and head.data_offset < len(url_query):
                data = Spool()  # data inline in the URL query, after the FORMAT clause
                data.write(url_query[head.data_offset:].encode())
                if body is not None:
                    for chunk in body.chunks():
                        data.write(chunk)
                    body.close()
                body = data
                sql = head.statement
            elif head is not None:
                data, sql = body, head.statement
            else:
                sql, data, head = request.statement(self.ep, url_query, body)
            if not sql.strip():
                raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
            self._execute(sql, head, data, settings, qparams)
        finally:
            if body is not None:
                body.close()
            for _, _, spool in self.external:
                spool.close()

    def _execute(self, sql: str, head, data: Spool | None, settings: dict, qparams: dict) -> None:
        ep, params, req, out = self.ep, self.params, self.req, self.out
        # One user's queries wait their turn here, never holding an engine connection while they wait.
        # KILL QUERY does not wait: a user at the limit must be able to stop its own queries.
        counted = head is not None or next(iter(sqltext.tokens(sql[:100])), ("",))[0] != "KILL"
        if counted:
            ep.admission.enter(self.user)
        try:
            conn, session = sessions.acquire(ep, params, self.user)
        except BaseException:
            if counted:
                ep.admission.leave(self.user)
            raise
        self._conn, self._session, self._st, self._running = conn, session, None, None
        self._released = False
        self._admitted = counted
        self._discard = False
        try:
            database = params.get("database") or req.header("x-clickhouse-database") or None
            if head is None and access.is_access_statement(sql):
                conn.prepare(database, {})
                return policy.answer_access(out, ep, self.who, conn, sql)
            st, relax = policy.judge(ep, self.who, sql, head, qparams, settings, database, conn)
            conn.prepare(database, settings, relax=relax)
            policy.check_readonly(params, req.method, conn, st, settings)
            fmt = None
            if st.returns_rows:
                fmt = policy.output_format(st.output_format, params, req)
            if self.external:
                inserts.load_external(ep, conn, params, self.external)
                self._discard = True
            if st.root == "Set" and "readonly" in [n.lower() for n in st.sets]:
                policy.set_readonly(conn, st, session)
                return out.finish_empty(fmt=None)
            self._st = st
            running = Running(self.query_id, self.user, sql[:1000], time.time(), self.h.sock,
                              watch=st.reads_only, engine=ep.engine, conn=conn)
            ep.registry.add(running, replace=int_param(params, "replace_running_query") == 1)
            self._running = running
            conn.current = running
            if st.root == "KillQueryQuery":
                cancel.kill_queries(out, ep, self.who, self.query_id, conn, st, fmt, qparams)
            elif head is not None:
                inserts.insert(out, conn, head, data, running)
            elif st.streams and fmt.lower() in STREAMABLE_FORMATS:
                out.stream(conn, sql, fmt, qparams, running)
            else:
                out.run_whole(conn, sql, fmt, qparams, st)
        except BaseException:
            self._release(ok=False)
            raise
        finally:
            self._release(ok=True)

    def _release(self, ok: bool) -> None:
        """Ends the request's hold on its query id, session and connection. The send functions call
        it just before the last bytes of a response leave, so a client that sends its next request
        the moment it has the answer finds the session free and the query id unused."""
        if self._released:
            return
        self._released = True
        ep, conn, st = self.ep, self._conn, self._st
        try:
            conn.conn.set_progress_callback(None)
        except Exception:
            pass
        with conn.kill_lock:
            conn.current = None
        if self._running is not None:
            ep.registry.remove(self._running)
        if self._admitted:
            self._admitted = False
            ep.admission.leave(self.user)
        sessions.give_back(ep, conn, self._session, self.params, self.user, ok, st, self.external,
                           discard=self._discard or self.out.spoilt)
