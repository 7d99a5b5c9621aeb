"""Users and roles of the embedded endpoint: who may run which statement on which tables.

The engine (chDB) has no access control of its own reachable here, so the endpoint keeps named
users, each with one or more of four fixed roles, and authorizes every statement from the engine's
parse of it (the tables a statement reads, the table it writes, its kind):

* ``admin``: everything (migrations, repairs, user management). The bootstrap user
  (SWARMLENS_CLICKHOUSE_USER, `default`) is an admin and is not in the users file.
* ``reporter``: reads every table; inserts into the application's database (accounts, prices,
  feedback, notifications). No DDL, no deletes, nothing on the raw spans but reads.
* ``ingest``: inserts into the raw database (the spans); reads only the raw and system tables
  (what a client library looks up before an insert). No table functions.
* ``analyst``: reads, with default limits on time, memory and result rows it may lower and not
  raise; never the tables that hold credentials (ops accounts, API tokens).

Users live in ``<data dir>/access/users.json`` (scrypt hashes; written whole, fsynced, renamed)
and are managed with ClickHouse's own statements, which the endpoint answers itself:
``CREATE USER``, ``ALTER USER``, ``DROP USER``, ``GRANT role TO user``, ``REVOKE role FROM user``,
``SHOW USERS``, ``SHOW ROLES``, ``SHOW GRANTS [FOR user]`` (and ``swarmlens db users``, which
sends them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from swarmlens import sqltext
from swarmlens.embedded.errors import ClickHouseError

ROLES = ("admin", "reporter", "ingest", "analyst")
# What an analyst's queries may take at most; they may ask for less, never more (or unlimited).
ANALYST_LIMITS = {"max_execution_time": 300, "max_memory_usage": 4 << 30, "max_result_rows": 10_000_000}
# Tables of the application's database that hold credentials: no role but admin and reporter reads them.
CREDENTIAL_TABLES = ("ops_accounts", "api_tokens")
# Table functions that only compute (no table, no file, no network): every role may use them.
PURE_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries",
                                  "values", "sqlstandardvalues", "format", "null", "generaterandom", "primes",
                                  "fuzzjson", "input"})
# What an analyst may use besides: views over subqueries, whose tables the parse shows and the
# role checks. Every other table function (merge(), loop(), dictionary(), mergeTreeIndex(),
# timeSeries*(), ...) names tables in arguments no role check can see through.
ANALYST_TABLE_FUNCTIONS = PURE_TABLE_FUNCTIONS | {"view", "viewifpermitted", "viewexplain"}

_NAME = re.compile(r"^(merge|mergetree\w*|dictionary|clusterallreplicas|cluster|remote\w*)$")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,63}$")
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}
ACCESS_WORDS = {("CREATE", "USER"), ("ALTER", "USER"), ("DROP", "USER"), ("CREATE", "ROLE"), ("ALTER", "ROLE"),
                ("DROP", "ROLE"), ("SHOW", "USERS"), ("SHOW", "ROLES"), ("SHOW", "GRANTS"), ("SHOW", "ACCESS"),
                ("CREATE", "QUOTA"), ("CREATE", "SETTINGS"), ("CREATE", "ROW"), ("DROP", "QUOTA"),
                ("DROP", "SETTINGS"), ("DROP", "ROW"), ("CHECK", "GRANT")}


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]

    @property
    def admin(self) -> bool:
        return "admin" in self.roles


def _denied(who: str, grant: str) -> ClickHouseError:
    return ClickHouseError(497, "ACCESS_DENIED", f"{who}: Not enough privileges. To execute this query, it's "
                                                 f"necessary to have the grant {grant}")


def _hash(password: str, salt: bytes | None = None) -> dict:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 << 20, **_SCRYPT)
    return {"scheme": "scrypt", "salt": base64.b64encode(salt).decode(), "hash": base64.b64encode(digest).decode()}


def _verify(password: str, stored: dict) -> bool:
    if stored.get("scheme") != "scrypt":
        return False
    salt = base64.b64decode(stored["salt"])
    return hmac.compare_digest(_hash(password, salt)["hash"], stored["hash"])


class Users:
    """The users file, and who a request's credentials name."""

    def __init__(self, path: str, admin: str, admin_password: str, raw_db: str = "otel", app_db: str = "swarmlens"):
        self.path = path
        self.admin, self.admin_password = admin, admin_password
        self.raw_db, self.app_db = raw_db, app_db
        self._lock = threading.Lock()
        self._users: dict[str, dict] = {}
        # verified passwords, by a keyed digest, so a request pays scrypt once per user and password
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._load()

    # -- the file --------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read() or b"{}")
        except FileNotFoundError:
            return
        except ValueError as exc:
            raise RuntimeError(f"{self.path} is damaged ({exc}): restore it from a backup, or move it away "
                               "to start with the admin user alone") from None
        self._users = {n: u for n, u in (doc.get("users") or {}).items() if isinstance(u, dict)}

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        tmp = self.path + ".tmp"
        data = json.dumps({"version": 1, "users": self._users}, indent=1, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # -- authentication --------------------------------------------------------------------------
    def authenticate(self, user: str, password: str) -> Principal | None:
        if hmac.compare_digest(user.encode(), self.admin.encode()):
            if hmac.compare_digest(password.encode(), self.admin_password.encode()):
                return Principal(self.admin, frozenset({"admin"}))
            return None
        with self._lock:
            entry = self._users.get(user)
            if entry is None:
                return None
            token = hmac.new(self._key, password.encode(), "sha256").digest()
            known = self._verified.get(user)
            if known is not None and hmac.compare_digest(known, token):
                return Principal(user, frozenset(entry.get("roles") or ()))
            stored = dict(entry["password"])
        if not _verify(password, stored):
            return None
        with self._lock:
            entry = self._users.get(user)
            if entry is None or entry["password"] != stored:
                return None  # changed while we checked
            self._verified[user] = token
            return Principal(user, frozenset(entry.get("roles") or ()))

    def roles_of(self, user: str) -> list[str]:
        if user == self.admin:
            return ["admin"]
        with self._lock:
            return sorted((self._users.get(user) or {}).get("roles") or [])

    def names(self) -> list[str]:
        with self._lock:
            return sorted([self.admin, *self._users])

    # -- management (the statements) -------------------------------------------------------------
    def create(self, name: str, password: str | None, roles: list[str], if_not_exists: bool, replace: bool) -> None:
        _check_name(name)
        _check_roles(roles)
        with self._lock:
            if name == self.admin or (name in self._users and not replace):
                if if_not_exists:
                    return
                raise ClickHouseError(493, "ACCESS_ENTITY_ALREADY_EXISTS", f"user `{name}`: cannot insert because "
                                      "user `" + name + "` already exists")
            self._users[name] = {"roles": sorted(set(roles)), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "password": _hash(password if password is not None else secrets.token_urlsafe(24))}
            self._verified.pop(name, None)
            self._save()

    def alter(self, name: str, password: str | None, roles: list[str] | None, if_exists: bool) -> None:
        with self._lock:
            entry = self._existing(name, if_exists)
            if entry is None:
                return
            if password is not None:
                entry["password"] = _hash(password)
                self._verified.pop(name, None)
            if roles is not None:
                _check_roles(roles)
                entry["roles"] = sorted(set(roles))
            self._save()

    def drop(self, names: list[str], if_exists: bool) -> None:
        with self._lock:
            for name in names:
                if self._existing(name, if_exists) is not None:
                    del self._users[name]
                    self._verified.pop(name, None)
            self._save()

    def grant(self, roles: list[str], names: list[str], revoke: bool = False) -> None:
        _check_roles(roles)
        with self._lock:
            for name in names:
                entry = self._existing(name, False)
                have = set(entry.get("roles") or ())
                entry["roles"] = sorted(have - set(roles) if revoke else have | set(roles))
            self._save()

    def _existing(self, name: str, if_exists: bool) -> dict | None:
        if name == self.admin:
            raise ClickHouseError(497, "ACCESS_DENIED", f"user `{name}` is the endpoint's own admin "
                                  "(SWARMLENS_CLICKHOUSE_USER / SWARMLENS_CLICKHOUSE_PASSWORD): change it there")
        entry = self._users.get(name)
        if entry is None and not if_exists:
            raise ClickHouseError(192, "UNKNOWN_USER", f"There is no user `{name}` in user directories")
        return entry

    # -- authorization ---------------------------------------------------------------------------
    def authorize(self, who: Principal, st, database: str) -> None:
        """Raises Code 497 when none of the user's roles allows the statement."""
        if who.admin:
            return
        roles = who.roles
        if not roles:
            raise _denied(who.name, "of a role (the user has none: GRANT analyst TO " + who.name + ")")
        reads = [_qualify(t, database) for t in st.tables if _qualify(t, database) != _qualify(st.target, database)]
        root = st.root
        if root in ("Set", "UseQuery", "KillQueryQuery"):
            return  # KILL finds only the user's own queries (the endpoint filters them)
        if root == "InsertQuery":
            target = _qualify(st.target, database)
            db = target.partition(".")[0]
            if not ((db == self.raw_db and "ingest" in roles) or (db == self.app_db and "reporter" in roles)):
                raise _denied(who.name, f"INSERT ON {target}")
        elif root == "CheckQuery":
            reads = [_qualify(st.target, database)]  # CHECK TABLE reads the table it names
        elif not st.reads_only:
            what = root.replace("Query", "").upper() or "this statement"
            on = f" ON {_qualify(st.target, database)}" if st.target else ""
            raise _denied(who.name, f"{what}{on}")
        self._authorize_reads(who, st, reads)

    def _authorize_reads(self, who: Principal, st, reads: list[str]) -> None:
        roles = who.roles
        if roles & {"reporter"}:
            return
        if roles & {"analyst"}:
            for t in reads:
                db, _, table = t.partition(".")
                if db == self.app_db and table in CREDENTIAL_TABLES:
                    raise _denied(who.name, f"SELECT ON {t}")
            for fn in st.table_functions:
                if fn.lower() not in ANALYST_TABLE_FUNCTIONS:
                    raise _denied(who.name, f"SELECT ON *.* (table function {fn}() reads tables by name)")
            return
        # ingest alone: the raw tables and what a client looks up in system
        for t in reads:
            db = t.partition(".")[0]
            if db not in (self.raw_db, "system", "information_schema", "INFORMATION_SCHEMA"):
                raise _denied(who.name, f"SELECT ON {t}")
        for fn in st.table_functions:
            if fn.lower() not in PURE_TABLE_FUNCTIONS:
                raise _denied(who.name, f"CREATE TEMPORARY TABLE, {fn.upper()} ON *.*")

    def limits(self, who: Principal, settings: dict[str, str], st) -> None:
        """An analyst's limits: applied where the request sets none, refused above the cap."""
        if who.admin or "analyst" not in who.roles or who.roles & {"reporter", "ingest"}:
            return
        asked = [(n.lower(), v) for n, v in list(settings.items()) + list(st.set_values) + list(st.query_setting_values)]
        for name, value in asked:
            cap = ANALYST_LIMITS.get(name)
            if cap is None or value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                raise ClickHouseError(452, "SETTING_CONSTRAINT_VIOLATION",
                                      f"Setting {name} should be a number no greater than {cap}") from None
            if number <= 0 or number > cap:
                raise ClickHouseError(452, "SETTING_CONSTRAINT_VIOLATION",
                                      f"Setting {name} shouldn't be greater than {cap} (nor 0, which lifts it) "
                                      f"for user {who.name}")
        for name, cap in ANALYST_LIMITS.items():
            settings.setdefault(name, str(cap))


def _qualify(table: str | None, database: str) -> str:
    if not table:
        return ""
    return table if "." in table else f"{database}.{table}"


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ClickHouseError(36, "BAD_ARGUMENTS", f"Invalid user name {name[:64]!r}: letters, digits, _ . @ -, "
                              "at most 64, starting with a letter or _")


def _check_roles(roles: list[str]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ClickHouseError(511, "UNKNOWN_ROLE", f"There is no role `{unknown[0]}` in user directories "
                              f"(the roles are {', '.join(ROLES)})")


# -- the access statements -------------------------------------------------------------------------

def is_access_statement(sql: str) -> bool:
    words = [w for w, _, _, _ in sqltext.tokens(sql[:200])][:2]
    if words[:1] in (["GRANT"], ["REVOKE"]):
        return True
    return tuple(words) in ACCESS_WORDS


@dataclass
class AccessStatement:
    verb: str  # CREATE_USER, ALTER_USER, DROP_USER, GRANT, REVOKE, SHOW_USERS, SHOW_ROLES, SHOW_GRANTS
    names: list
    password: str | None = None
    roles: list | None = None
    if_exists: bool = False
    if_not_exists: bool = False
    replace: bool = False
    output_format: str | None = None


def _tokens(sql: str):
    """('word' | 'string' | 'punct', value) outside comments; names may be quoted."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
            continue
        j = sqltext._skip(sql, i)
        if j is not None:
            if ch in "'\"`":
                raw = sql[i + 1:j - 1]
                value = re.sub(r"\\(.)", r"\1", raw).replace(ch * 2, ch)
                yield ("string" if ch == "'" else "word"), value
            i = j
            continue
        m = _WORD.match(sql, i)
        if m:
            yield "word", m.group(0)
            i = m.end()
            continue
        yield "punct", ch
        i += 1


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")


def parse_access(sql: str) -> AccessStatement:
    toks = [t for t in _tokens(sql.strip().rstrip(";"))]
    pos = 0

    def peek(k=0):
        return toks[pos + k] if pos + k < len(toks) else ("", "")

    def word(*options):
        nonlocal pos
        t = peek()
        if t[0] == "word" and t[1].upper() in options:
            pos += 1
            return t[1].upper()
        return None

    def expect(*options):
        w = word(*options)
        if w is None:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Syntax error: expected {' or '.join(options)} at "
                                  f"{peek()[1][:40]!r}")
        return w

    def name():
        nonlocal pos
        t = peek()
        if t[0] != "word":
            raise ClickHouseError(62, "SYNTAX_ERROR", f"Syntax error: expected a name at {t[1][:40]!r}")
        pos += 1
        return t[1]

    def names():
        nonlocal pos
        out = [name()]
        while peek() == ("punct", ","):
            pos += 1
            out.append(name())
        return out

    def tail(st):
        if word("FORMAT"):
            st.output_format = name()
        if pos < len(toks):
            raise ClickHouseError(48, "NOT_IMPLEMENTED", f"{peek()[1][:40]!r}: this endpoint's users take a "
                                  "password (IDENTIFIED BY) and roles (DEFAULT ROLE, GRANT role TO user) only")
        return st

    def identified(st):
        nonlocal pos
        if word("NOT"):
            raise ClickHouseError(36, "BAD_ARGUMENTS", "Every user of this endpoint has a password")
        if word("WITH"):
            scheme = name().lower()
            if scheme not in ("plaintext_password", "sha256_password", "double_sha1_password", "bcrypt_password",
                              "scram_sha256_password"):
                raise ClickHouseError(48, "NOT_IMPLEMENTED", f"IDENTIFIED WITH {scheme}: use IDENTIFIED BY 'password'")
        expect("BY")
        t = peek()
        if t[0] != "string":
            raise ClickHouseError(62, "SYNTAX_ERROR", "Syntax error: expected the password as a string literal")
        pos += 1
        st.password = t[1]

    first = expect("CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "SHOW", "CHECK")
    if first in ("CREATE", "ALTER", "DROP") and word("ROLE", "QUOTA", "SETTINGS", "ROW", "PROFILE", "POLICY"):
        raise ClickHouseError(48, "NOT_IMPLEMENTED", f"{first} of roles, quotas, profiles and policies: this endpoint "
                              f"has the fixed roles {', '.join(ROLES)}; GRANT one TO a user")
    if first == "SHOW":
        what = expect("USERS", "ROLES", "GRANTS", "ACCESS")
        st = AccessStatement("SHOW_" + what, [])
        if what == "GRANTS" and word("FOR"):
            st.names = names()
        return tail(st)
    if first == "CHECK":
        raise ClickHouseError(48, "NOT_IMPLEMENTED", "CHECK GRANT: see SHOW GRANTS")
    if first in ("GRANT", "REVOKE"):
        roles = []
        while True:
            t = peek()
            if t[0] != "word":
                break
            if t[1].upper() in ("TO", "FROM", "ON"):
                break
            roles.append(t[1])
            pos += 1
            if peek() == ("punct", ","):
                pos += 1
        if word("ON") or not roles:
            raise ClickHouseError(48, "NOT_IMPLEMENTED", "Privileges come from the roles "
                                  f"{', '.join(ROLES)}: GRANT role TO user")
        roles = [r.lower() for r in roles]
        expect("TO" if first == "GRANT" else "FROM")
        return tail(AccessStatement(first, names(), roles=roles))
    expect("USER")
    st = AccessStatement(first + "_USER", [])
    if first == "CREATE":
        if word("OR"):
            expect("REPLACE")
            st.replace = True
        if word("IF"):
            expect("NOT")
            expect("EXISTS")
            st.if_not_exists = True
    elif word("IF"):
        expect("EXISTS")
        st.if_exists = True
    st.names = names() if first == "DROP" else [name()]
    while first != "DROP" and pos < len(toks) and peek()[1].upper() != "FORMAT":
        if word("IDENTIFIED"):
            identified(st)
        elif word("DEFAULT"):
            expect("ROLE")
            st.roles = [r.lower() for r in names()]
        else:
            break
    return tail(st)
