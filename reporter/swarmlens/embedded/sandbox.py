"""What a statement may do on the embedded endpoint, decided from the engine's own parse of it.

chDB runs with clickhouse-local's powers: `file()` reads any path the process can read, `INTO
OUTFILE` writes anywhere, `url()` and the database engines reach the network, dictionaries and
`SYSTEM` act on the process. It offers no `user_files_path` confinement, no users and no grants
(CREATE ROLE / ROW POLICY answer Code 497), so none of that can be switched off in the engine.
This module keeps the endpoint a database and nothing more:

* the engine formats the statement (`formatQuerySingleLine`), which also refuses multi-statements,
  and prints its syntax tree (`EXPLAIN AST`) of exactly that text;
* the tree names every function and its place: table functions (under a table expression, an
  INSERT INTO FUNCTION or a CREATE ... AS), table and database engines, dictionary sources;
* the engine's canonical text (no comments, one spelling per keyword) shows the clauses the tree
  prints without detail: INTO OUTFILE, FROM INFILE, the SYSTEM command, SETTINGS names, `disk()`.

Table functions, engines and dictionary sources are allow-listed; anything not known to stay in the
data directory is refused with Code 497 (ACCESS_DENIED), as a server refuses what a user's grants do
not cover. An operator who wants files opens one directory (SWARMLENS_CLICKHOUSE_USER_FILES_PATH),
as a server's `user_files_path` does: `file()`, INTO OUTFILE and FROM INFILE then work on literal
paths inside it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from swarmlens import sqltext
from swarmlens.embedded.errors import ClickHouseError

# Table functions that read only the engine's own data or generate rows.
SAFE_TABLE_FUNCTIONS = frozenset(n.lower() for n in (
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries", "values", "view",
    "viewIfPermitted", "viewExplain", "merge", "null", "input", "format", "generateRandom", "loop",
    "dictionary", "mergeTreeIndex", "mergeTreeProjection", "mergeTreeAnalyzeIndexes", "primes",
    "fuzzJSON", "fuzzQuery", "timeSeriesData", "timeSeriesTags", "timeSeriesMetrics", "timeSeriesSelector",
    "mergeTreeTextIndex",
))
FILE_TABLE_FUNCTIONS = frozenset({"file"})  # allowed inside the operator's user_files_path only

# Table and database engines that keep their data in the data directory (or in memory).
SAFE_ENGINES = frozenset(n.lower() for n in (
    "MergeTree", "ReplacingMergeTree", "SummingMergeTree", "AggregatingMergeTree", "CollapsingMergeTree",
    "VersionedCollapsingMergeTree", "GraphiteMergeTree", "CoalescingMergeTree", "Memory", "Log", "TinyLog",
    "StripeLog", "Null", "Set", "Join", "Buffer", "Merge", "Dictionary", "EmbeddedRocksDB", "GenerateRandom",
    "TimeSeries", "View", "MaterializedView", "Alias",
    # database engines
    "Atomic", "Ordinary", "Lazy",
))

# Scalar functions that reach outside the data directory.
DENIED_FUNCTIONS = frozenset({"file", "catboostevaluate", "modelevaluate"})

# Dictionary sources: only a table of this engine, named without host or query text.
SAFE_DICTIONARY_SOURCES = frozenset({"clickhouse", "null"})
SAFE_CLICKHOUSE_SOURCE_KEYS = frozenset({"TABLE", "DB", "UPDATE_FIELD", "UPDATE_LAG"})

# SYSTEM commands that only flush, drop caches or pause background work of this engine.
SAFE_SYSTEM_PREFIXES = (
    ("FLUSH", "LOGS"), ("FLUSH", "ASYNC"), ("DROP", "MARK"), ("DROP", "UNCOMPRESSED"), ("DROP", "QUERY"),
    ("DROP", "COMPILED"), ("DROP", "MMAP"), ("DROP", "INDEX"), ("DROP", "PRIMARY"), ("DROP", "SCHEMA"),
    ("DROP", "FORMAT"), ("DROP", "PAGE"), ("STOP", "MERGES"), ("START", "MERGES"), ("STOP", "TTL"),
    ("START", "TTL"), ("SYNC", "REPLICA"), ("RELOAD", "DICTIONARY"), ("RELOAD", "DICTIONARIES"),
    ("WAIT", "LOADING"), ("STOP", "FETCHES"), ("START", "FETCHES"),
    # the engine's current names of the cache drops (it prints SYSTEM DROP ... CACHE as SYSTEM CLEAR ...)
    ("CLEAR", "MARK"), ("CLEAR", "UNCOMPRESSED"), ("CLEAR", "QUERY"), ("CLEAR", "COMPILED"), ("CLEAR", "MMAP"),
    ("CLEAR", "INDEX"), ("CLEAR", "PRIMARY"), ("CLEAR", "SCHEMA"), ("CLEAR", "FORMAT"), ("CLEAR", "PAGE"),
)

# Settings that name files the engine would read or write, or hold expressions the engine evaluates
# outside the statement's syntax tree.
DENIED_SETTINGS = frozenset({"format_schema", "output_format_schema", "format_template_resultset",
                             "format_template_row", "format_schema_source", "additional_result_filter",
                             "additional_table_filters"})
_ENGINE_LAYER_SETTINGS = frozenset({"input_format_values_interpret_expressions",
                                    "input_format_values_deduce_templates_of_expressions"})
# Settings whose values the verdict reads: a statement naming one is judged by its exact text.
_VALUE_CHECKED = DENIED_SETTINGS | _ENGINE_LAYER_SETTINGS | {"dialect", "log_comment"}


def setting_allowed(name: str, value: str | None) -> bool:
    """Settings that name files may only be empty; the dialect stays ClickHouse SQL (another query
    language would be parsed otherwise than the statement was judged)."""
    n = name.lower()
    if n == "format_schema_source":
        return (value or "").lower() in ("", "file")  # its default; the file name must still be empty
    if n in DENIED_SETTINGS:
        return value == ""
    if n == "dialect":
        return (value or "").lower() == "clickhouse"
    if n in _ENGINE_LAYER_SETTINGS:
        # the engine layer: Values input reads values, not expressions (embedded/engine.py)
        return (value or "").strip("'").lower() in ("0", "false")
    return True


def statement_setting_allowed(name: str, value: str | None) -> bool:
    """A setting in a SET statement or a SETTINGS clause: as a URL parameter, and log_comment is the
    endpoint's own (it names the engine connection's queries for KILL QUERY)."""
    return name.lower() != "log_comment" and setting_allowed(name, value)

# Statement kinds (the root node of the tree) that only read.
_READ_ROOTS = ("SelectWithUnionQuery", "SelectIntersectExceptQuery", "Show", "Describe", "Exists", "Explain",
               "CheckGrantQuery")
_RESULT_ROOTS = _READ_ROOTS + ("KillQueryQuery", "CheckQuery")


@dataclass
class Statement:
    """What the engine's parse says about one statement."""

    root: str  # the tree's root node type, e.g. SelectWithUnionQuery, InsertQuery, Set
    canonical: str  # the engine's own single-line formatting
    reads_only: bool
    returns_rows: bool
    streams: bool  # a SELECT: the engine can stream its result
    sets: list[str] = field(default_factory=list)  # settings a SET statement changes
    query_settings: list[str] = field(default_factory=list)  # names in SETTINGS clauses
    set_values: list = field(default_factory=list)  # (name, literal value or None) of the SET
    query_setting_values: list = field(default_factory=list)  # the same for SETTINGS clauses
    stateful: bool = False  # changes the connection (SET, USE, temporary tables, transactions)
    denied: str | None = None  # why the sandbox refuses it
    output_format: str | None = None  # the name in its top-level FORMAT clause
    by_shape: bool = False  # its verdict holds for every statement of its shape (literals aside)
    tables: list = field(default_factory=list)  # every table it names (db.table or table), for the roles
    target: str | None = None  # the table it writes, creates, changes or drops
    table_functions: list = field(default_factory=list)  # table functions in table positions

    def check(self) -> None:
        if self.denied:
            raise ClickHouseError(497, "ACCESS_DENIED", self.denied)


@dataclass(frozen=True)
class Policy:
    """What the operator opened. The default opens nothing."""

    user_files_path: str = ""

    def file_allowed(self, path: str) -> bool:
        if not self.user_files_path or not path.startswith("/"):
            return False  # the engine resolves a relative path against its working directory
        root = os.path.realpath(self.user_files_path)
        # Globs are resolved by the engine under the directory part before the first wildcard.
        head = path
        for i, ch in enumerate(path):
            if ch in "*?{[":
                head = path[:i]
                break
        full = os.path.realpath(head)
        return (full == root or full.startswith(root + os.sep)) and ".." not in path.split("/")


class Sandbox:
    """Parses statements with the engine and caches what it learnt: per statement text, and per
    shape (the text with its literals taken out) for statements whose verdict reads no literal, so
    that clients that inline their values pay the engine's parse once per shape."""

    def __init__(self, policy: Policy | None = None, cache_size: int = 4096):
        self.policy = policy or Policy()
        self._cache: OrderedDict[str, Statement] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._outward: frozenset[str] | None = None

    def inspect(self, engine, sql: str, params: dict | None = None) -> Statement:
        """The verdict for one statement, parsed on one of the engine's pristine connections."""
        if params and _NAMES_FROM_PARAMS.search(sql):
            # {x:Identifier} names a table: the tables (for the roles) depend on the values, so the
            # verdict is kept for this text with these values only
            sql_key = sql + "\x00" + json.dumps(params, sort_keys=True)
            return self._inspect_cached(engine, sql, params, sql_key, None)
        return self._inspect_cached(engine, sql, params, sql, shape(sql))

    def _inspect_cached(self, engine, sql: str, params: dict | None, sql_key: str, key: str | None) -> Statement:
        with self._lock:
            hit = self._cache.get(sql_key)
            if hit is None and key is not None:
                hit = self._cache.get(key)
                if hit is not None and not hit.by_shape:
                    hit = None
            if hit is not None:
                self._cache.move_to_end(sql_key if sql_key in self._cache else key)
                return hit
        if self._outward is None:
            self._outward = engine.parse(_outward_table_functions)
        st = engine.parse(lambda conn: self._inspect(conn, sql, params or {}))
        st.by_shape = key is not None and _shape_safe(st)
        with self._lock:
            self._cache[key if st.by_shape else sql_key] = st
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return st

    def _inspect(self, conn, sql: str, params: dict) -> Statement:
        try:
            canonical = conn.run("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                 {"q": escape_param(sql)}).bytes().decode("utf-8", "replace").rstrip("\n")
        except ClickHouseError as exc:
            # the statement's own syntax error, without the scope of the formatting query around it
            cut = exc.message.find("In scope SELECT formatQuerySingleLine(")
            if cut >= 0:
                exc.message = exc.message[:cut].rstrip(" .:") or exc.message
            raise
        # The formatting parsed the whole text as one statement (it refuses multi-statements), so the
        # tree of the text as sent is the tree of that one statement.
        tree = conn.run("EXPLAIN AST " + sql, "TabSeparatedRaw", params).bytes().decode("utf-8", "replace")
        return judge(canonical, tree, self.policy, self._outward or frozenset())


_NAMES_FROM_PARAMS = re.compile(r"\{\s*\w+\s*:\s*Identifier\s*\}", re.IGNORECASE)


def _outward_table_functions(conn) -> frozenset[str]:
    """Table functions that reach outside the data directory and are not also ordinary functions:
    refused wherever they stand in a tree (inside loop(), view(), merge() or any argument list)."""
    rows = conn.run("SELECT name FROM system.table_functions WHERE name NOT IN (SELECT name FROM system.functions)",
                    "TabSeparatedRaw").bytes().decode().split("\n")
    return frozenset(n.lower() for n in rows if n) - SAFE_TABLE_FUNCTIONS


# quoted identifiers (kept), string literals and numbers (taken out), in the order the lexer sees them
_SHAPE_TOKEN = re.compile(r"`(?:[^`\\]|``)*`|\"(?:[^\"\\]|\"\")*\"|'(?:[^'\\]|'')*'|\b\d[\w.]*")
_SHAPE_UNSURE = re.compile(r"--|/\*|#|\$|\\")


def shape(sql: str) -> str | None:
    """The statement with every string and number literal replaced by `?`, or None when the text has
    anything a plain scan could misread (comments, heredocs, backslashes): those are judged by their
    exact text only. Two texts of one shape differ only inside literals."""
    outside = _SHAPE_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in "`\"" else "?", sql)
    if _SHAPE_UNSURE.search(outside) or "'" in _SHAPE_TOKEN.sub("", outside) or "\x00" in sql:
        return None
    return "\x00shape\x00" + outside


def _shape_safe(st: Statement) -> bool:
    """A verdict holds for the whole shape when it read no literal: no paths (file(), INTO OUTFILE,
    FROM INFILE), no setting values, no connection state (SET, USE, KILL's condition)."""
    if st.stateful or st.root in ("Set", "UseQuery", "KillQueryQuery") or st.set_values:
        return False
    if any(n.lower() in _VALUE_CHECKED for n, _ in st.query_setting_values):
        return False
    up = st.canonical.upper()
    return not any(w in up for w in ("OUTFILE", "INFILE", "FILE(", "SOURCE("))


def escape_param(value: str) -> str:
    """A String query parameter's value is read in the escaped (TSV) form."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _nodes(tree: str):
    """(depth, node type, name) for each line of EXPLAIN AST output."""
    for line in tree.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if " (children" in text:
            text = text[:text.index(" (children")]
        kind, _, rest = text.partition(" ")
        rest = rest.strip()
        if " (alias " in rest:
            rest = rest[:rest.index(" (alias ")]
        yield depth, kind, rest


def judge(canonical: str, tree: str, policy: Policy, outward: frozenset[str] = frozenset()) -> Statement:
    nodes = list(_nodes(tree))
    # most roots are one word; SYSTEM and MOVE USER print as "SYSTEM query" / "MOVE USER query"
    root = nodes[0][1] if nodes else ""
    words = [w for w, _, _, _ in sqltext.tokens(canonical)]
    first = words[0] if words else ""
    reads_only = root.startswith(_READ_ROOTS)
    st = Statement(root=root, canonical=canonical, reads_only=reads_only,
                   returns_rows=root.startswith(_RESULT_ROOTS),
                   streams=root in ("SelectWithUnionQuery", "SelectIntersectExceptQuery"))
    denied: list[str] = []

    # Functions, by where they stand in the tree.
    stack: list[tuple[int, str]] = []
    for depth, kind, name in nodes:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if kind == "TableIdentifier" and name:
            st.tables.append(name.replace("`", ""))
        if kind in ("Function", "FunctionWithKeyValueArguments"):
            lname = name.lower()
            table_position = parent in ("TableExpression", "InsertQuery", "CreateQuery", "BackupQuery")
            if table_position:
                st.table_functions.append(name)
            if kind == "FunctionWithKeyValueArguments" and parent == "Dictionary":
                pass  # checked from the canonical text below, with its keys
            elif parent == "Storage":
                # the engine (checked from the canonical text) and key expressions
                if lname in DENIED_FUNCTIONS:
                    denied.append(f"{name} reaches outside the database")
            elif table_position:
                if lname in FILE_TABLE_FUNCTIONS and policy.user_files_path:
                    pass  # its path is checked from the canonical text below
                elif lname not in SAFE_TABLE_FUNCTIONS:
                    denied.append(f"table function {name}() reaches outside the database")
            elif lname in DENIED_FUNCTIONS and not (lname == "file" and policy.user_files_path):
                denied.append(f"function {name}() reaches outside the database")
            elif lname in outward:
                # a table function nested where no table expression shows it (loop(url(...)), ...)
                denied.append(f"table function {name}() reaches outside the database")
        stack.append((depth, kind))

    st.target = _target(nodes)
    st.output_format = sqltext.output_format(canonical)
    _check_canonical(canonical, st, policy, denied, first)
    if root in ("BackupQuery", "RestoreQuery") or first in ("BACKUP", "RESTORE"):
        denied.append("BACKUP and RESTORE write or read files outside the database")
    if first == "MOVE":
        denied.append("access management is not available")
    if "NAMED" in words[:4] and "COLLECTION" in words[:5]:
        denied.append("named collections hold connection details for sources outside the database")
    if root == "Set":
        st.stateful = True
    if root in ("UseQuery", "SetRoleQuery", "ASTTransactionControl") or \
            (root == "CreateQuery" and words[:2] == ["CREATE", "TEMPORARY"]):
        st.stateful = True
    for name, value in st.set_values + st.query_setting_values:
        if not statement_setting_allowed(name, value):
            denied.append(f"setting {name} = {value!r} is not allowed here")
    if denied:
        st.denied = "Not enough privileges: " + "; ".join(dict.fromkeys(denied))
    return st


def _target(nodes) -> str | None:
    """The table a statement writes: the identifiers under its root (INSERT) or on its root's line
    (ALTER, DROP, TRUNCATE, CREATE, OPTIMIZE, DELETE, ...)."""
    if not nodes:
        return None
    depth0, root, rest = nodes[0]
    if root == "InsertQuery":
        idents = []
        for depth, kind, name in nodes[1:]:
            if depth != depth0 + 1 or kind != "Identifier":
                break
            idents.append(name.replace("`", ""))
        return ".".join(idents[:2]) or None
    if root in ("SelectWithUnionQuery", "SelectIntersectExceptQuery", "Set", "Explain", "SYSTEM"):
        return None
    parts = rest.split()
    if parts and root.endswith("Query") and 1 <= len(parts) <= 2:
        if root == "OptimizeQuery" and parts[-1].endswith("_final"):
            parts[-1] = parts[-1][:-len("_final")]
        return ".".join(p.replace("`", "") for p in parts)
    return None


def _check_canonical(text: str, st: Statement, policy: Policy, denied: list[str], first: str) -> None:
    toks = list(_token_stream(text))
    n = len(toks)
    for i, (kind, val, depth) in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < n else ("", "", 0)
        nxt2 = toks[i + 2] if i + 2 < n else ("", "", 0)
        if kind != "word":
            continue
        up = val.upper()
        if up == "INTO" and nxt[1].upper() == "OUTFILE":
            path = nxt2[1] if nxt2[0] == "string" else None
            if not (path is not None and policy.file_allowed(path)):
                denied.append("INTO OUTFILE writes a file outside the database")
        elif up == "FROM" and nxt[1].upper() == "INFILE":
            path = nxt2[1] if nxt2[0] == "string" else None
            if not (path is not None and policy.file_allowed(path)):
                denied.append("FROM INFILE reads a file outside the database")
        elif up == "ENGINE" and nxt[1] == "=" and nxt2[0] in ("word", "ident"):
            if nxt2[1].lower() not in SAFE_ENGINES:
                denied.append(f"engine {nxt2[1]} reaches outside the database")
            elif nxt2[1].lower() == "embeddedrocksdb" and _argument_count(toks, i + 3) > 1:
                denied.append("EmbeddedRocksDB keeps its files in the data directory: give it no path")
        elif up == "DISK" and nxt[1] == "(":
            denied.append("disk() places data outside the data directory")
        elif up == "SOURCE" and nxt[1] == "(" and nxt2[0] == "word":
            src = nxt2[1].lower()
            if src not in SAFE_DICTIONARY_SOURCES:
                denied.append(f"dictionary source {nxt2[1]} reaches outside the database")
            elif src == "clickhouse":
                for k in _source_keys(toks, i + 3):
                    if k not in SAFE_CLICKHOUSE_SOURCE_KEYS:
                        denied.append(f"dictionary source key {k} is not allowed (use TABLE and DB)")
        elif up == "SETTINGS" and first != "SET":
            pairs = _assignments(toks, i + 1)
            st.query_setting_values += pairs
            st.query_settings += [n for n, _ in pairs]
        elif up == "FILE" and nxt[1] == "(" and policy.user_files_path:
            path = nxt2[1] if nxt2[0] == "string" else None
            if path is None or not policy.file_allowed(path):
                denied.append(f"file() may read only literal paths inside {policy.user_files_path}")
        elif up == "ATTACH" and i == 0:
            for k, v, d in toks[1:]:
                if k == "word" and v.upper() == "FROM" and d == 0:
                    denied.append("ATTACH ... FROM reads files outside the database")
                    break
    if first == "SET" and toks:
        st.set_values = _assignments(toks, 1)
        st.sets = [n for n, _ in st.set_values]
    if first == "SYSTEM":
        cmd = tuple(v.upper() for k, v, _ in toks[1:3] if k == "word")
        if not any(cmd[:len(p)] == p for p in SAFE_SYSTEM_PREFIXES):
            denied.append(f"SYSTEM {' '.join(cmd)} acts on the process; only flushes, cache drops and "
                          "merge control are allowed")


_NUMBER = re.compile(r"\d[\w.]*")


def _token_stream(text: str):
    """('word' | 'string' | 'punct', value, depth) over the engine's canonical text."""
    i, n, depth = 0, len(text), 0
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'`\"":
            j = sqltext._skip(text, i)
            raw = text[i + 1:j - 1]
            yield ("string" if ch == "'" else "ident"), _unescape(raw), depth
            i = j
            continue
        m = sqltext._WORD.match(text, i)
        if m:
            yield "word", m.group(0), depth
            i = m.end()
            continue
        m = _NUMBER.match(text, i)
        if m:
            yield "number", m.group(0), depth
            i = m.end()
            continue
        if ch == "(":
            yield "punct", "(", depth
            depth += 1
        elif ch == ")":
            depth -= 1
            yield "punct", ")", depth
        else:
            yield "punct", ch, depth
        i += 1


def _unescape(raw: str) -> str:
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _assignments(toks, start: int) -> list[tuple[str, str | None]]:
    """(name, value) in `a = 1, b = 'x'` from position `start`, at that depth; the value is the text
    of a single string, number or word, and None for anything longer."""
    pairs: list[tuple[str, str | None]] = []
    if start >= len(toks):
        return pairs
    depth = toks[start][2]
    i = start
    while i + 1 < len(toks):
        kind, val, d = toks[i]
        if d != depth or kind not in ("word", "ident") or toks[i + 1][1] != "=":
            break
        name = val
        i += 2
        value_toks = []
        while i < len(toks) and not (toks[i][1] == "," and toks[i][2] == depth) and toks[i][2] >= depth:
            if toks[i][2] == depth and toks[i][0] == "word" and toks[i][1].upper() in ("FORMAT", "SETTINGS"):
                break
            value_toks.append(toks[i])
            i += 1
        pairs.append((name, value_toks[0][1] if len(value_toks) == 1 else None))
        if i < len(toks) and toks[i][1] == "," and toks[i][2] == depth:
            i += 1
            continue
        break
    return pairs


def _argument_count(toks, start: int) -> int:
    """How many arguments the parenthesis at `start` holds (0 when there is none)."""
    if start >= len(toks) or toks[start][1] != "(":
        return 0
    inner, count, seen = toks[start][2] + 1, 0, False
    for kind, val, d in toks[start + 1:]:
        if d < inner:
            break
        if d == inner and kind == "punct" and val == ",":
            count += 1
        else:
            seen = True
    return count + 1 if seen else 0


def _source_keys(toks, start: int) -> list[str]:
    """Keys of `CLICKHOUSE(KEY value KEY value ...)`, from the source's opening parenthesis."""
    if start >= len(toks) or toks[start][1] != "(":
        return []
    inner = toks[start][2] + 1
    seq = []
    for kind, val, d in toks[start + 1:]:
        if d < inner:
            break
        if d == inner:
            seq.append(val.upper() if kind == "word" else "?")
    return seq[0::2]
