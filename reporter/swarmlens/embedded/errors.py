"""Errors of the embedded ClickHouse endpoint, shaped as a ClickHouse server reports them."""

from __future__ import annotations

import re

# Exception code -> HTTP status, as ClickHouse's HTTP handler maps them; anything else is 500.
_STATUS_BY_CODE = {
    194: 401,  # REQUIRED_PASSWORD
    516: 401,  # AUTHENTICATION_FAILED
    192: 403, 193: 403, 497: 403, 164: 403,  # UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, READONLY
    # Parse and type errors: the request is wrong.
    6: 400, 25: 400, 26: 400, 27: 400, 32: 400, 33: 400, 38: 400, 41: 400, 62: 400, 69: 400, 70: 400,
    72: 400, 117: 400, 130: 400, 36: 400, 43: 400, 44: 400, 53: 400, 15: 400, 16: 400, 20: 400,
    40: 400, 89: 400, 246: 400, 271: 400, 8: 400, 10: 400, 42: 400, 179: 400, 190: 400, 352: 400,
    # Unknown things: not found.
    46: 404, 47: 404, 60: 404, 73: 404, 81: 404, 115: 404, 50: 404, 57: 404, 63: 404, 86: 404, 215: 404,
    161: 413, 162: 413,  # TOO_BIG_AST / TOO_DEEP_AST
    202: 503,  # TOO_MANY_SIMULTANEOUS_QUERIES
    373: 409,  # SESSION_IS_LOCKED
    372: 404,  # SESSION_NOT_FOUND
    48: 501,  # NOT_IMPLEMENTED
    159: 408,  # TIMEOUT_EXCEEDED
    394: 499,  # QUERY_WAS_CANCELLED
}

# Codes of failures of the server's own: the same body may well succeed a moment later (a table
# not created yet, memory, disk, too many parts, a timeout). Every other code means the data sent
# is wrong, and re-sending the same body cannot succeed.
SERVER_ERROR_CODES = frozenset({
    60, 81,  # UNKNOWN_TABLE, UNKNOWN_DATABASE: migrations still running
    24, 74, 75, 76, 77,  # CANNOT_WRITE_TO_OSTREAM, CANNOT_READ_FROM/WRITE_TO_FILE_DESCRIPTOR, CANNOT_OPEN_FILE, CANNOT_REMOVE_FILE
    159, 173, 202, 209, 210, 236, 241, 242, 243, 252,  # TIMEOUT_EXCEEDED ... TOO_MANY_PARTS
    425, 999, 1000, 1001, 1002,  # SYSTEM_ERROR, KEEPER_EXCEPTION, POCO/STD/UNKNOWN exceptions
})


def is_data_error(code: int) -> bool:
    return code not in SERVER_ERROR_CODES

_CODE_RE = re.compile(r"Code:\s*(\d+)\.")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version[^)]*\))?\s*$")
_NAME_AT_END_RE = re.compile(r"\s*\(([A-Z][A-Z0-9_]+)\)\s*$")
_VERSION_RE = re.compile(r"\s*\(version [^)]*(?:\([^)]*\))?[^)]*\)\s*$")


class ClickHouseError(Exception):
    """An error with a ClickHouse exception code, reported to HTTP clients as a server would."""

    def __init__(self, code: int, name: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        self.http_status = http_status or http_status_for(code)

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
        m = _CODE_RE.search(text)
        code = int(m.group(1)) if m else 1000
        msg = text[m.end():].strip() if m else text
        if msg.startswith("DB::Exception:"):
            msg = msg[len("DB::Exception:"):].strip()
        msg = _VERSION_RE.sub("", msg).rstrip()
        name = "UNKNOWN_EXCEPTION"
        name_m = _NAME_AT_END_RE.search(msg)
        if name_m:
            name = name_m.group(1)
            msg = msg[:name_m.start()].rstrip()
        return cls(code, name, msg.rstrip(". \n") or "engine error")


def http_status_for(code: int) -> int:
    return _STATUS_BY_CODE.get(code, 500)
