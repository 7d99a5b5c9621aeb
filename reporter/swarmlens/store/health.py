"""Damaged parts: what the engine says about its own data, cheaply for health checks and in full
for `swarmlens db check`.

Measured on chDB 4.4 (engine 26.9) through the embedded endpoint: with a part's ``data.bin``
deleted, ``system.parts`` still lists the part as active and ``system.detached_parts`` is empty;
``system.part_log`` does not exist; every query reading the part fails with Code 107
(FILE_DOESNT_EXIST) naming the table and the part, and ``system.errors`` keeps that message;
``CHECK TABLE db.t`` (identifiers as typed parameters work) answers a row per part with
``is_passed = 0`` and the error, and ``CHECK TABLE db.t PART 'name'`` (a literal only) checks one.
``ALTER TABLE ... DETACH PART`` sets a part aside in ``detached/`` and the table answers again.

- ``quick_findings``: for /readyz, `swarmlens status` and the error page. Reads ``system.errors``
  for the codes of damaged data whose message names a table of ours, confirms each with a
  ``CHECK TABLE ... PART`` of that one part (a part detached or merged away since is no longer a
  finding), and lists mutations that keep failing and parts the engine itself set aside as broken.
  A handful of small queries, no data read except the suspect part's.
- ``full_check``: ``CHECK TABLE`` of every MergeTree table of ours (reads every part: for
  `swarmlens db check`).
- ``detach``: the repair of a damaged part: ``DETACH PART`` (its files stay in ``detached/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

# ClickHouse's codes for data it cannot read back as written.
DAMAGE_CODES = {32: "ATTEMPT_TO_READ_AFTER_EOF", 33: "CANNOT_READ_ALL_DATA", 40: "CHECKSUM_DOESNT_MATCH",
                76: "CANNOT_OPEN_FILE", 107: "FILE_DOESNT_EXIST", 246: "CORRUPTED_DATA", 271: "CANNOT_DECOMPRESS"}
BROKEN_DETACHED = ("broken", "broken-on-start", "unexpected", "covered-by-broken")
REPAIR_COMMAND = "swarmlens db check --repair"

_TABLE = re.compile(r"in table `?([\w]+)`?\.`?([\w]+)`?")
_PART = re.compile(r"(?:from part|reading part|part) [^ ]*?/?([A-Za-z0-9_-]+_\d+_\d+_\d+(?:_\d+)?)/?[ :]")
_PART_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A part's path under an Atomic database: store/<3 hex>/<table uuid>/<part>/ (CHECK TABLE's own
# messages name the path only).
_PATH = re.compile(r"/store/[0-9a-f]{3}/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/"
                   r"([A-Za-z0-9_-]+)/")

Runner = Callable[[str, dict], list[dict]]


@dataclass(frozen=True)
class Finding:
    table: str          # db.table
    part: str           # part name ("" when not about one part)
    problem: str        # what is wrong, in a few words
    detail: str = ""    # the engine's message
    blocking: bool = True  # queries of the table fail (False: data set aside, the table answers)

    def line(self) -> str:
        where = f"{self.table}" + (f" part {self.part}" if self.part else "")
        return f"{where}: {self.problem}"


def runner_for(client) -> Runner:
    """Runs SQL with typed parameters through a clickhouse-connect client; rows as dicts. Asks for
    JSONEachRow: the embedded endpoint answers CHECK TABLE in a form ``client.query`` (Native)
    reads as one row of every cell."""
    import json

    def run(sql: str, params: dict) -> list[dict]:
        raw = client.raw_query(sql, parameters=params, fmt="JSONEachRow")
        return [json.loads(line) for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return run


def table_in(message: str) -> str:
    """The ``db.table`` an engine error names, or ""."""
    m = _TABLE.search(message or "")
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def part_in(message: str) -> str:
    m = _PART.search(message or "")
    return m.group(1) if m else ""


def _short(message: str) -> str:
    code = re.search(r"\(([A-Z_]+)\)", message or "")
    first = (message or "").split(":", 1)[0].strip()
    return (code.group(1) if code else first)[:120]


def check_part(run: Runner, table: str, part: str) -> Finding | None:
    """``CHECK TABLE ... PART`` of one part; None when it passes or no longer exists."""
    if not _PART_NAME.match(part) or "." not in table:
        return None
    db, name = table.split(".", 1)
    try:
        # The part needs a literal (the parser refuses a parameter there); its name was checked above.
        rows = run(f"CHECK TABLE {{db:Identifier}}.{{t:Identifier}} PART '{part}' "
                   "SETTINGS check_query_single_value_result = 0", {"db": db, "t": name})
    except Exception as exc:  # detached or merged away since, or the table dropped
        if any(word in str(exc) for word in ("NO_SUCH_DATA_PART", "No such data part", "UNKNOWN_TABLE",
                                             "UNKNOWN_DATABASE", "Code: 232", "Code: 60.", "Code: 81.")):
            return None
        raise
    for row in rows:
        if not int(row.get("is_passed", 1)):
            return Finding(table, part, f"damaged part ({_short(row.get('message', ''))})", row.get("message", ""))
    return None


def quick_findings(run: Runner, databases: Iterable[str], suspects: Iterable[str] = ()) -> list[Finding]:
    """``suspects``: messages of errors seen by the caller (``system.errors`` keeps only the last
    message of each code, so a second damaged table would hide the first)."""
    dbs = list(databases)
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    errors = run("SELECT code, last_error_message AS message FROM system.errors "
                 "WHERE code IN {codes:Array(Int32)} AND value > 0",
                 {"codes": sorted(DAMAGE_CODES)})
    errors += [{"code": 0, "message": m} for m in suspects]
    for row in errors:
        message = row.get("message") or ""
        table, part = table_in(message), part_in(message)
        by_path = _PATH.search(message)
        if by_path and (not table or not part):
            named = run("SELECT database, name FROM system.tables WHERE uuid = {u:UUID}", {"u": by_path.group(1)})
            if named:
                table, part = f"{named[0]['database']}.{named[0]['name']}", part or by_path.group(2)
        if not table or table.split(".", 1)[0] not in dbs or (table, part) in seen:
            continue
        seen.add((table, part))
        if part:
            found = check_part(run, table, part)
            if found:
                findings.append(found)
        else:
            findings.append(Finding(table, "", f"the engine could not read it ({DAMAGE_CODES.get(int(row['code']))})",
                                    message))
    for row in run("SELECT database, table, mutation_id, latest_fail_reason FROM system.mutations "
                   "WHERE database IN {dbs:Array(String)} AND NOT is_done AND latest_fail_reason != ''",
                   {"dbs": dbs}):
        findings.append(Finding(f"{row['database']}.{row['table']}", "",
                                f"mutation {row['mutation_id']} keeps failing ({_short(row['latest_fail_reason'])})",
                                row["latest_fail_reason"], blocking=False))
    for row in run("SELECT database, table, name, reason FROM system.detached_parts "
                   "WHERE database IN {dbs:Array(String)} AND reason IN {reasons:Array(String)}",
                   {"dbs": dbs, "reasons": list(BROKEN_DETACHED)}):
        findings.append(Finding(f"{row['database']}.{row['table']}", row["name"],
                                f"part set aside by the engine as {row['reason']} (its rows are not read)",
                                blocking=False))
    return findings


def full_check(run: Runner, databases: Iterable[str], progress: Callable[[str], None] | None = None) -> list[Finding]:
    """``CHECK TABLE`` of every MergeTree table of ``databases``: every damaged part."""
    tables = run("SELECT database, name FROM system.tables WHERE database IN {dbs:Array(String)} "
                 "AND engine LIKE '%MergeTree' ORDER BY database, name", {"dbs": list(databases)})
    findings = []
    for t in tables:
        rows = run("CHECK TABLE {db:Identifier}.{t:Identifier} SETTINGS check_query_single_value_result = 0",
                   {"db": t["database"], "t": t["name"]})
        bad = [r for r in rows if not int(r.get("is_passed", 1))]
        for r in bad:
            findings.append(Finding(f"{t['database']}.{t['name']}", r.get("part_path", ""),
                                    f"damaged part ({_short(r.get('message', ''))})", r.get("message", "")))
        if progress:
            progress(f"  checked {t['database']}.{t['name']}: {len(rows)} part(s)"
                     + (f", {len(bad)} damaged" if bad else ""))
    return findings


def detach(run: Runner, finding: Finding) -> None:
    db, table = finding.table.split(".", 1)
    run("ALTER TABLE {db:Identifier}.{t:Identifier} DETACH PART {p:String}", {"db": db, "t": table, "p": finding.part})


def verdict(findings: list[Finding]) -> str:
    """One line for a person: what is damaged and the command that repairs it."""
    blocking = [f for f in findings if f.blocking]
    if not findings:
        return "ok: no damaged part"
    if blocking:
        tables = sorted({f.table for f in blocking})
        return (f"DAMAGED: {len(blocking)} part(s) of {', '.join(tables)} cannot be read "
                f"({'; '.join(f.line() for f in blocking[:3])}); run `{REPAIR_COMMAND}` to set them aside "
                "(their rows are lost unless restored from a backup: `swarmlens restore`)")
    return "warning: " + "; ".join(f.line() for f in findings[:3])
