"""Errors of the embedded ClickHouse endpoint, shaped as a ClickHouse server reports them."""

from __future__ import annotations

import re

from swarmlens.errors import SwarmlensError

# Exception code -> HTTP status, as ClickHouse's HTTP handler maps them (exceptionCodeToHTTPStatus).
_STATUS_BY_CODE = {
    194: 401,  # REQUIRED_PASSWORD
    516: 401,  # AUTHENTICATION_FAILED (a server says 403; clients treat both alike)
    # UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, READONLY, SET_NON_GRANTED_ROLE
    192: 403, 193: 403, 497: 403, 164: 403, 512: 403,
    # Unknown things: not found.
    46: 404, 47: 404, 50: 404, 56: 404, 60: 404, 63: 404, 73: 404, 78: 404, 81: 404, 115: 404, 152: 404, 336: 404,
    511: 404, 372: 404,  # ... UNKNOWN_ROLE, SESSION_NOT_FOUND
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    76: 503, 209: 503, 439: 503,  # CANNOT_OPEN_FILE, SOCKET_TIMEOUT, CANNOT_SCHEDULE_TASK
    202: 503,  # TOO_MANY_SIMULTANEOUS_QUERIES
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
    373: 409, 216: 409,  # SESSION_IS_LOCKED, QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: busy now, free in a moment
    394: 499,  # QUERY_WAS_CANCELLED
}
LOGICAL_ERROR = 49

# Codes of failures of the server's own: the same body may well succeed a moment later (a table
# not created yet, memory, disk, too many parts, a timeout). Every other code means the request is
# wrong, and re-sending it cannot succeed.
SERVER_ERROR_CODES = frozenset({
    60, 81,  # UNKNOWN_TABLE, UNKNOWN_DATABASE: migrations still running
    24, 74, 75, 76, 77,  # CANNOT_WRITE_TO_OSTREAM, CANNOT_READ_FROM/WRITE_TO_FILE_DESCRIPTOR, CANNOT_OPEN_FILE, CANNOT_REMOVE_FILE
    159, 173, 202, 209, 210, 236, 241, 242, 243, 252,  # TIMEOUT_EXCEEDED ... TOO_MANY_PARTS
    425, 999, 1000, 1001, 1002,  # SYSTEM_ERROR, KEEPER_EXCEPTION, POCO/STD/UNKNOWN exceptions
})

# A std::exception (Code 1001) is the server's only when it says so: an allocation or a system call
# failed. Otherwise it comes from a library that parses the request's data (ORC, Parquet, Arrow...).
_SERVER_STD_EXCEPTION = re.compile(r"bad_alloc|system_error|filesystem|Cannot allocate|No space left", re.I)


# What the engine says when the kernel denied it an open, a directory or a connect (EACCES).
_SANDBOX_DENIAL = re.compile(r"errno: 13\b|Permission denied", re.I)


def is_data_error(code: int) -> bool:
    return code not in SERVER_ERROR_CODES


_CODE_RE = re.compile(r"Code:\s*(\d+)[.,]")  # "Code: 1001, type: ..." is a std::exception's
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version[^)]*\))?\s*$")
_NAME_AT_END_RE = re.compile(r"\s*\(([A-Z][A-Z0-9_]+)\)\s*$")
_NESTED_RE = re.compile(r"Code:\s*(\d+)\.\s*DB::Exception:\s*")
_VERSION_RE = re.compile(r"\s*\(version [^)]*(?:\([^)]*\))?[^)]*\)\s*$")


class ClickHouseError(SwarmlensError):
    """An error with a ClickHouse exception code, reported to HTTP clients as a server would."""

    def __init__(self, code: int, name: str, message: str, http_status: int | None = None,
                 server_side: bool | None = None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        # a failure of the server's own (worth retrying the same request) or of the request
        self.server_side = (not is_data_error(code)) if server_side is None else server_side
        self.http_status = http_status or http_status_for(code, self.server_side)

    def body(self, version: str) -> bytes:
        return f"Code: {self.code}. DB::Exception: {self.message}. ({self.name}) (version {version} (chDB))\n".encode()

    @classmethod
    def from_engine(cls, exc: BaseException) -> "ClickHouseError":
        """Wraps an engine exception ("Code: 60. DB::Exception: ... (UNKNOWN_TABLE) (version ...)"):
        the code, the name (at the end of the message, which may span lines) and the text alone."""
        text = str(exc).strip()
        for prefix in ("Streaming insert finish failed: ", "Streaming insert append failed: ",
                       "Streaming query failed: "):
            if text.startswith(prefix):
                text = text[len(prefix):]
        if "codec can't decode" in text and not _CODE_RE.search(text):
            # The engine's message quoted bytes of the request that are not UTF-8, and the engine
            # binding could not read its own message: the request's data was refused.
            return cls(117, "INCORRECT_DATA", "The data was refused with a message that quotes bytes which are "
                       "not UTF-8, so the engine's message cannot be shown; check the encoding of the data")
        m = _CODE_RE.search(text)
        code = int(m.group(1)) if m else 1000
        msg = text[m.end():].strip() if m and text[m.end() - 1] == "." else text
        if msg.startswith("DB::Exception:"):
            msg = msg[len("DB::Exception:"):].strip()
        # an error the engine re-threw carries its "Code: N. DB::Exception:" and "(NAME) (version ...)" again
        while True:
            inner = _NESTED_RE.match(msg)
            if not inner or int(inner.group(1)) != code:
                break
            msg = msg[inner.end():]
        msg = _VERSION_RE.sub("", msg).rstrip()
        name = "UNKNOWN_EXCEPTION"
        name_m = _NAME_AT_END_RE.search(msg)
        if name_m:
            name = name_m.group(1)
            msg = msg[:name_m.start()].rstrip()
            repeated = msg.find(f"({name}) (version ")
            if repeated > 0:
                msg = msg[:repeated].rstrip()
        elif code == 1001:
            name = "STD_EXCEPTION"
        if _SANDBOX_DENIAL.search(msg):
            # The kernel refused the engine a file or a connection outside its data directory (the
            # endpoint's Landlock confinement): the request asked for what no user may have.
            return cls(497, "ACCESS_DENIED", "Not enough privileges: the endpoint reaches no file outside its data "
                       f"directory and opens no connection ({msg.rstrip('. ')[:500]})")
        server_side = None
        if code == 1001 and not _SERVER_STD_EXCEPTION.search(msg):
            server_side = False
        return cls(code, name, msg.rstrip(". \n") or "engine error", server_side=server_side)


def http_status_for(code: int, server_side: bool | None = None) -> int:
    """A server's status for the code where it names one; otherwise 500 for a failure of the server's
    own (and LOGICAL_ERROR, a defect of the engine) and 400 for a request the engine refused. A server
    answers 500 for every code outside its list, also for requests that can never succeed (throwIf,
    too deep an expression, a bad setting value): a 5xx invites a client or a proxy to retry them."""
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    if server_side is None:
        server_side = not is_data_error(code)
    return 500 if server_side or code == LOGICAL_ERROR else 400
