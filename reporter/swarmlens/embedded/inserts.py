"""Inserts: buffered INSERT data into the engine, retried for the server's failures, and external data.

Owns what happens to data a request carries. An INSERT's data is buffered whole (request.py)
before it reaches the engine, so a client that disconnects mid-body stores nothing and a retried
batch is identical to the first (insert deduplication then drops it). A valid insert that fails for
a reason of the server's (not of the data) is retried here and then answered by closing the
connection instead of an HTTP error: collectors retry an aborted connection with the body intact,
while some re-send an empty body after an error status. External data tables (the file parts of a
multipart request) become temporary tables for their query alone.
"""

from __future__ import annotations

import logging
import time

from swarmlens.embedded.cancel import Running
from swarmlens.embedded.engine import Connection
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.request import FORMAT_NAME_RE, Drop, Spool, quote_ident
from swarmlens.embedded.results import stat

log = logging.getLogger(__name__)

# Pauses between the attempts of an insert that failed for a reason of the server's.
RETRY_PAUSES = (0.1, 0.5, 1.0, 2.0, 4.0)


def insert(out, conn: Connection, head, data: Spool | None, running: Running) -> None:
    """Runs a buffered insert. A failure of the data is the client's to hear about; a failure of
    the server's is retried here with the same bytes (insert deduplication makes a repeat of a
    partly applied attempt harmless), and only when it persists is the connection closed.
    `out` answers (results.Results)."""
    started = time.perf_counter_ns()
    for attempt, pause in enumerate(RETRY_PAUSES + (None,)):
        inserter = None
        try:
            inserter = conn.conn.send_insert(head.statement, head.format)
            if data is not None:
                for chunk in data.chunks():
                    if running.cancelled.is_set():
                        raise ClickHouseError(394, "QUERY_WAS_CANCELLED", "Query was cancelled")
                    inserter.append(chunk)
            result = inserter.finish()
            break
        except Exception as exc:
            if inserter is not None:
                try:
                    inserter.cancel()
                except Exception:
                    pass
            err = exc if isinstance(exc, ClickHouseError) else ClickHouseError.from_engine(exc)
            if not err.server_side:
                raise err from None
            if pause is None or out.ep._stopping:
                log.error("insert failed %d times for a reason of the server's; closing the connection "
                          "without an answer: %s", attempt + 1, err.message[:500])
                raise Drop() from None
            log.warning("insert failed for a reason of the server's, retrying in %.1f s: %s",
                        pause, err.message[:300])
            time.sleep(pause)
    written = (stat(result, "rows_written", 0), stat(result, "bytes_written", 0))
    out.send_whole(b"", None, out.headers(None, 0, 0, time.perf_counter_ns() - started, stats=result,
                                          written=written))


def load_external(ep, conn: Connection, params: dict[str, str], external: list) -> None:
    """External data: each file part becomes a temporary table for this query alone."""
    for name, _, spool in external:
        structure = params.get(f"{name}_structure")
        types = params.get(f"{name}_types")
        fmt = params.get(f"{name}_format") or "TabSeparated"
        if structure is None and types is not None:
            structure = ", ".join(f"_{i + 1} {t.strip()}" for i, t in enumerate(types.split(",")))
        if not structure:
            raise ClickHouseError(36, "BAD_ARGUMENTS",
                                  f"Neither structure nor types have not been provided for external table {name[:100]}. "
                                  f"Use fields {name}_structure or {name}_types to do so.")
        ddl = f"CREATE TEMPORARY TABLE {quote_ident(name)} ({structure}) ENGINE = Memory"
        verdict = ep.sandbox.inspect(ep.engine, ddl)
        if ep.check_statements:
            verdict.check()
        conn.run(ddl, "TabSeparated")
        if not FORMAT_NAME_RE.match(fmt):
            raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {fmt[:50]}")
        ins = None
        try:
            ins = conn.conn.send_insert(f"INSERT INTO {quote_ident(name)}", fmt)
            for chunk in spool.chunks():
                ins.append(chunk)
            ins.finish()
        except Exception as exc:
            if ins is not None:
                try:
                    ins.cancel()
                except Exception:
                    pass
            raise ClickHouseError.from_engine(exc) from None
