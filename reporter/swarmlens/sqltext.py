"""Just enough SQL lexing for the embedded endpoint and the migrations: where statements end,
where an INSERT's data starts, which output format a query asks for, and whether a statement
only reads. Quotes, comments and parentheses are respected; everything else is left to the
engine."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEREDOC = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[^\W\d][\w]*")  # Unicode letters too: `SELECT 1 AS é` is a bare word
_MODIFYING_STARTS = {"INSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME", "OPTIMIZE", "SYSTEM", "KILL",
                     "GRANT", "REVOKE", "ATTACH", "DETACH", "DELETE", "UPDATE", "EXCHANGE", "UNDROP", "BACKUP",
                     "RESTORE", "MOVE", "REPLACE"}


def _skip(sql: str, i: int) -> int | None:
    """When a quoted name or literal, or a comment, starts at i: the index just past it."""
    ch, n = sql[i], len(sql)
    if ch in "'\"`":
        j = i + 1
        while j < n:
            if sql[j] == "\\":
                j += 2
                continue
            if sql[j] == ch:
                if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                    j += 2
                    continue
                break
            j += 1
        return j + 1
    if ch == "$":  # heredoc: $tag$ ... $tag$ (the tag may be empty)
        m = _HEREDOC.match(sql, i)
        if m:
            end = sql.find(m.group(0), m.end())
            return n if end < 0 else end + len(m.group(0))
        return None
    if sql.startswith("--", i) or sql.startswith("#!", i) or sql.startswith("# ", i):
        j = sql.find("\n", i)
        return n if j < 0 else j + 1
    if sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        return n if j < 0 else j + 2
    return None


def tokens(sql: str):
    """Yields (word_upper, start, end, depth) for each bare word outside quotes and comments."""
    i, n, depth = 0, len(sql), 0
    while i < n:
        j = _skip(sql, i)
        if j is not None:
            i = j
            continue
        ch = sql[i]
        if ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            i += 1
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            if m is None:  # a letter the word pattern does not take (combining marks): skip it
                i += 1
                continue
            yield m.group(0).upper(), i, m.end(), depth
            i = m.end()
        else:
            i += 1


def split_statements(sql: str) -> list[str]:
    """Splits SQL text on `;` outside quotes and comments. Comments stay with their statement;
    a statement of comments and whitespace only is dropped."""
    parts, start, i, n = [], 0, 0, len(sql)
    while i < n:
        j = _skip(sql, i)
        if j is not None:
            i = j
            continue
        if sql[i] == ";":
            parts.append(sql[start:i])
            start = i + 1
        i += 1
    parts.append(sql[start:])
    return [p.strip() for p in parts if _has_code(p)]


def _has_code(sql: str) -> bool:
    i, n = 0, len(sql)
    while i < n:
        j = _skip(sql, i)
        if j is not None:
            if sql[i] in "'\"`":
                return True
            i = j
            continue
        if not sql[i].isspace():
            return True
        i += 1
    return False


def first_word(sql: str) -> str:
    for word, _, _, _ in tokens(sql):
        return word
    return ""


@dataclass
class InsertHead:
    statement: str  # the INSERT without its FORMAT clause, as chDB's streaming insert wants it
    format: str
    data_offset: int  # where the data starts in the text the head was found in


def split_data_insert(sql: str) -> InsertHead | None:
    """For `INSERT INTO ... FORMAT Name <data>`, returns the head and where the data starts.

    Returns None for anything else, including INSERT ... VALUES and INSERT ... SELECT,
    which the engine runs as ordinary statements.
    """
    it = tokens(sql)
    first = next(it, None)
    if not first or first[0] != "INSERT":
        return None
    for word, start, end, depth in it:
        if depth != 0:
            continue
        if word in ("VALUES", "SELECT", "WITH"):
            return None
        if word == "FORMAT":
            m = _WORD.match(sql, _skip_space(sql, end))
            if not m:
                return None
            fmt = m.group(0)
            if fmt.upper() == "VALUES":
                return None
            pos = m.end()
            # Data starts after the format name and the blanks up to and including one newline.
            while pos < len(sql) and sql[pos] in " \t":
                pos += 1
            if sql.startswith("\r\n", pos):
                pos += 2
            elif pos < len(sql) and sql[pos] == "\n":
                pos += 1
            return InsertHead(sql[:start].rstrip(), fmt, pos)
    return None


def output_format(sql: str) -> str | None:
    """The name in a query's top-level FORMAT clause, if it has one."""
    found = None
    for word, _, end, depth in tokens(sql):
        if word == "FORMAT" and depth == 0:
            m = _WORD.match(sql, _skip_space(sql, end))
            if m:
                found = m.group(0)
    return found


def is_read_only(sql: str) -> bool:
    return first_word(sql) not in _MODIFYING_STARTS


def _skip_space(sql: str, i: int) -> int:
    while i < len(sql) and sql[i].isspace():
        i += 1
    return i


def escape_invalid_utf8(sql: bytes) -> str:
    """Decodes SQL text, keeping bytes that are not UTF-8 exact: inside a quoted literal or name they
    become `\\xNN` escapes, which the engine reads back as the same bytes; anywhere else they are a
    syntax error, as on a server."""
    try:
        return sql.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = sql.decode("latin-1")  # one char per byte: lexer offsets are byte offsets
    out, i, n = [], 0, len(text)
    while i < n:
        j = _skip(text, i)
        if j is None:
            j = i + 1
        piece = sql[i:j]
        try:
            out.append(piece.decode("utf-8"))
        except UnicodeDecodeError:
            if text[i] == "$":
                # a heredoc holds raw bytes: the same bytes as a quoted literal with escapes
                tag = _HEREDOC.match(text, i).group(0)
                body = piece[len(tag):len(piece) - len(tag)] if piece.endswith(tag.encode("latin-1")) else piece[len(tag):]
                body = body.replace(b"\\", b"\\\\").replace(b"'", b"\\'")
                out.append("'" + _escape_bytes(body) + "'")
            elif text[i] not in "'`\"":
                raise ValueError(f"bytes that are not UTF-8 at offset {i}, outside a quoted literal") from None
            else:
                out.append(_escape_bytes(piece))
        i = j
    return "".join(out)


def _escape_bytes(piece: bytes) -> str:
    out, k = [], 0
    while k < len(piece):
        for size in (4, 3, 2, 1):
            chunk = piece[k:k + size]
            try:
                ch = chunk.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.append(ch)
                k += size
                break
        else:
            out.append(f"\\x{piece[k]:02X}")
            k += 1
    return "".join(out)
