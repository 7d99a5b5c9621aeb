"""Policy: what a request may do, judged before the engine runs anything.

Owns the settings a request may carry (names, and the sandbox's list of settings that stay
the endpoint's), the sandbox's verdict on a statement from the engine's own parse (see
sandbox.py), the user's roles and limits (access.py), read-only as a server does it (GET implies
readonly=2, `readonly=1/2` are honoured, and the engine never sees `readonly`: a chDB connection
cannot leave readonly mode once in it), the relaxing of the engine layer for an `INSERT ... VALUES`
whose expressions the check has read, and the access statements (users, roles, grants) answered
from the users file.
"""

from __future__ import annotations

import json
import re

from swarmlens import sqltext
from swarmlens.embedded import access
from swarmlens.embedded.access import Principal
from swarmlens.embedded.engine import SETTING_NAME_RE, Connection
from swarmlens.embedded.errors import ClickHouseError
from swarmlens.embedded.request import FORMAT_NAME_RE, HTTP_PARAMS, int_param, quote_ident
from swarmlens.embedded.sandbox import Statement, escape_param, setting_allowed, shape

# a function call or a query parameter in VALUES (outside its literals)
_CALL_OR_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(|\{")


def split_params(ep, params: dict[str, str], external: list) -> tuple[dict[str, str], dict[str, str]]:
    """The request's settings and query parameters, from its URL parameters and form fields."""
    settings: dict[str, str] = {}
    qparams: dict[str, str] = {}
    external_names = {name for name, _, _ in external}
    for k, v in params.items():
        if k.startswith("param_"):
            qparams[k[6:]] = v
        elif k in HTTP_PARAMS or not k:
            continue
        elif k == "run_query_in_background":
            if v not in ("0", "", "false"):
                raise ClickHouseError(48, "NOT_IMPLEMENTED", "run_query_in_background is not available here")
            continue
        elif any(k == f"{n}_{suffix}" for n in external_names for suffix in ("structure", "types", "format")):
            continue
        else:
            if not SETTING_NAME_RE.match(k):
                raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{k[:100]}'")
            if ep.check_statements and not setting_allowed(k, v):
                raise ClickHouseError(497, "ACCESS_DENIED",
                                      f"Not enough privileges: setting {k} = {v[:100]!r} is not allowed here")
            settings[k] = v
    return settings, qparams


def judge(ep, who: Principal, sql: str, head, qparams: dict, settings: dict, database: str | None,
          conn: Connection) -> tuple[Statement, bool]:
    """The statement as the engine parses it, checked by the sandbox and against the user's roles
    and limits; and whether the engine layer may be relaxed for it (see values_checked)."""
    check_text = sql if head is None else f"{head.statement} FORMAT {head.format}"
    st = ep.sandbox.inspect(ep.engine, check_text, qparams)
    if ep.check_statements:
        st.check()
    # the user's roles, from the same parse (whatever the confinement layers)
    ep.users.authorize(who, st, database or conn.home)
    ep.users.limits(who, settings, st)
    relax = head is None and st.root == "InsertQuery" and bool(conn.locked) and \
        values_checked(ep, who, sql, qparams, database or conn.home)
    return st, relax


def values_checked(ep, who: Principal, sql: str, qparams: dict, database: str) -> bool:
    """For `INSERT ... VALUES (...)` written in the query text: whether its values hold more than
    literals (a function call such as now(), a {name:Type} parameter) and the statement check has
    read them as the SELECT of those tuples and found nothing that reaches outside. Then, and
    only then, the engine layer is relaxed for this request, so that clients that send
    parameters or expressions there (clickhouse-connect's server-side parameters) work. Values in
    a request body, and everything the check cannot read, stay under the engine layer."""
    values = next((t for t in sqltext.tokens(sql) if t[0] == "VALUES" and t[3] == 0), None)
    if values is None:
        return False
    tail = sql[values[2]:].strip().rstrip(";").strip()
    if not tail.startswith("("):
        return False
    outside = shape(tail)
    if outside is not None and not _CALL_OR_PARAM.search(outside):
        return False  # literals only: the hardened engine reads them
    try:
        check = ep.sandbox.inspect(ep.engine, "SELECT " + tail, qparams)
    except ClickHouseError:
        return False  # the engine answers for the statement itself
    if check.denied:
        if ep.check_statements:
            check.check()
        return False
    ep.users.authorize(who, check, database)
    return True


def check_readonly(params: dict[str, str], method: str, conn: Connection, st: Statement, settings: dict) -> None:
    level = max(int_param(params, "readonly"), conn.readonly)
    is_get = method in ("GET", "HEAD")
    if is_get and level == 0:
        level = 2
    if level == 0:
        return
    if st.root == "Set":
        names = [n for n in st.sets if n.lower() != "readonly"]
        if level == 1 and names:
            raise ClickHouseError(164, "READONLY", f"Cannot modify '{names[0]}' setting in readonly mode")
        if any(n.lower() == "readonly" for n in st.sets):
            raise ClickHouseError(164, "READONLY", "Cannot modify 'readonly' setting in readonly mode")
        return
    if level == 1:
        if st.query_settings:
            raise ClickHouseError(164, "READONLY",
                                  f"Cannot modify '{st.query_settings[0]}' setting in readonly mode")
        if conn.readonly >= 1 and settings:
            raise ClickHouseError(164, "READONLY", f"Cannot modify '{next(iter(settings))}' setting in readonly mode")
    if not st.reads_only and st.root != "UseQuery":
        if is_get and int_param(params, "readonly") == 0 and conn.readonly == 0:
            raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode. For queries over HTTP, "
                                  "method GET implies readonly. You should use method POST for modifying queries")
        raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode")


def set_readonly(conn: Connection, st: Statement, session: bool) -> None:
    """`SET readonly = N` is kept by the endpoint, never given to the engine; other settings in
    the same SET are applied as usual."""
    if any(n.lower() != "readonly" for n in st.sets):
        raise ClickHouseError(36, "BAD_ARGUMENTS", "Set readonly in a SET statement of its own on this endpoint")
    if session:  # a sessionless request's readonly ends with it
        conn.note_statement(st.canonical)


def output_format(stated: str | None, params: dict[str, str], req) -> str:
    """The result's format: the statement's FORMAT, else `default_format`, else X-ClickHouse-Format."""
    fmt = stated or params.get("default_format") or req.header("x-clickhouse-format") or "TabSeparated"
    if not FORMAT_NAME_RE.match(fmt):
        raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {fmt[:100]!r}")
    return fmt


def answer_access(out, ep, who: Principal, conn: Connection, sql: str) -> None:
    """The access statements (users, roles, grants), answered by the endpoint from its users file.
    `out` answers (results.Results)."""
    users = ep.users
    user = who.name
    st = access.parse_access(sql)
    mine = st.verb in ("SHOW_GRANTS", "SHOW_ROLES") and (not st.names or st.names == [user])
    if not (who.admin or mine):
        raise ClickHouseError(497, "ACCESS_DENIED", f"{user}: Not enough privileges. To execute this query, "
                              "it's necessary to have the grant ACCESS MANAGEMENT ON *.* (the admin role)")
    rows: list[dict] = []
    columns = ""
    if st.verb == "CREATE_USER":
        users.create(st.names[0], st.password, st.roles or [], st.if_not_exists, st.replace)
    elif st.verb == "ALTER_USER":
        users.alter(st.names[0], st.password, st.roles, st.if_exists)
    elif st.verb == "DROP_USER":
        users.drop(st.names, st.if_exists)
    elif st.verb in ("GRANT", "REVOKE"):
        users.grant(st.roles, st.names, revoke=st.verb == "REVOKE")
    elif st.verb == "SHOW_USERS":
        columns, rows = "name String", [{"name": n} for n in users.names()]
    elif st.verb == "SHOW_ROLES":
        columns, rows = "name String", [{"name": r} for r in
                                         (access.ROLES if who.admin else users.roles_of(user))]
    elif st.verb in ("SHOW_GRANTS", "SHOW_ACCESS"):
        names = st.names or ([user] if st.verb == "SHOW_GRANTS" else users.names())
        for name in names:
            if name not in users.names():
                raise ClickHouseError(192, "UNKNOWN_USER", f"There is no user `{name[:64]}` in user directories")
            roles = users.roles_of(name)
            if roles:
                grant = f"GRANT {', '.join(roles)} TO {quote_ident(name) if not name.isidentifier() else name}"
                rows.append({"GRANTS": grant})
        columns = "GRANTS String"
    if not columns:
        return out.finish_empty(fmt=None)
    fmt = output_format(st.output_format, out.params, out.req)
    body = "\n".join(json.dumps(r) for r in rows)
    result = conn.run("SELECT * FROM format(JSONEachRow, {__c:String}, {__rows:String})", fmt,
                      {"__c": columns, "__rows": escape_param(body)})
    data = bytes(result.bytes())
    out.send_whole(data, fmt, out.headers(fmt, len(rows), len(data), 0))
