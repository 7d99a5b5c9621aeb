"""Fuzzing of the embedded ClickHouse endpoint at the HTTP and encoding level, shared by
tests/embedded/test_endpoint_fuzz.py (a few hundred cases) and bench/bench_endpoint_fuzz.py
(10,000 by default).

``FuzzEndpoint`` runs `swarmlens clickhouse` in a subprocess on a fresh data directory, with a
password and small body limits, its log in a file, its memory read from /proc. ``generate(seed, i)``
builds case ``i`` of a seed from its own random generator (``random.Random(f"{seed}:{i}")``), so any
one case is rebuilt from its id alone. A case is raw bytes for a socket, most of which no HTTP client
would send: plain seeded generation is clearer here than a property-testing library, whose strength
(shrinking typed values) does not apply to byte streams judged by a server.

The oracle (``Fuzzer.run_case``), per case:

* every response has a status below 500, except the 5xx a server documents for conditions that are
  not the request's fault (``ALLOWED_5XX``), and an error response carries a ClickHouse error body
  whose code matches X-ClickHouse-Exception-Code (an error written into a streamed body, too);
* where the case says which statuses and codes are right (a bomb is 413, a bad checksum 400 with
  Code 40 ...), the answer is one of them; a compressed 200 body (and `compress=1` blocks) decodes;
* the connection is answered or closed; closed without an answer only where the case allows it
  (the client cut its own request short, or the framing is beyond repair);
* nothing takes longer than the case's bound, except a result still streaming (a mutation may ask
  for a billion rows): the client then leaves, and the endpoint must cancel the query within 30 s;
* the process is alive afterwards; its peak RSS during the case is at most 256 MiB above its RSS
  before it (/proc/PID/clear_refs resets the peak);
* the endpoint's log gained no traceback and no ERROR line.

Every ``batch`` cases (and at the end) ``SELECT 1`` must answer, and a table seeded before the run
must have the same checksum.
"""

from __future__ import annotations

import base64
import gzip
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import lz4.block
import lz4.frame

from swarmlens_testing.polling import wait_until
from swarmlens_testing.ports import free_port
from swarmlens.embedded import codecs
from swarmlens.embedded.errors import http_status_for

try:
    from backports import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.14+
    from compression import zstd as _zstd  # type: ignore[no-redef]

USER = "default"
PASSWORD = "fuzz-Pa55"
MAX_BODY = 1 << 20  # SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES of the fuzzed endpoint
MAX_QUERY = 256 << 10  # SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES
MAX_RESPONSE = 64 << 20  # a response longer than this is left unread (the client goes away)
MEMORY_PER_REQUEST = 256 << 20  # docs/embedded-clickhouse.md: one request raises memory by at most this
SCRATCH = "fuzz_scratch"  # tables the corpus inserts into (fuzzing may write anything there)
GUARD = "fuzz_guard"  # a table seeded before the run: it must not change
GUARD_ROWS = 5000

# 5xx a server answers for conditions that are not the request's fault; everything else must be < 500.
ALLOWED_5XX = {
    (501, 48): "NOT_IMPLEMENTED (run_query_in_background), as a server answers",
    (503, 202): "TOO_MANY_SIMULTANEOUS_QUERIES: every pooled connection busy, or 512 sessions open",
    (503, 210): "the endpoint is shutting down",
}

_ERROR_BODY = re.compile(rb"^Code: (\d+)\. DB::Exception: .*\(([A-Z][A-Z0-9_]*)\) \(version [^\n]*\)\n?$", re.S)

FORMATS = ("TabSeparated", "CSV", "JSONEachRow", "Values", "RowBinary", "Native", "Parquet", "JSONCompactEachRow",
           "TSKV", "CustomSeparated", "Arrow", "ORC", "MsgPack", "BSONEachRow", "Avro", "CSVWithNames")
COLUMNS = "id UInt64, s String, f Float64, d DateTime64(3), a Array(String), n Nullable(Int32)"
SAMPLE_ROWS = "SELECT number AS id, concat('s', toString(number), '\\t,\"é') AS s, number / 7 AS f, " \
              "toDateTime64('2026-01-01 00:00:00', 3) + number AS d, [toString(number), 'x'] AS a, " \
              "if(number % 3 = 0, NULL, toInt32(number) - 5) AS n FROM numbers(5)"


# -- cases ----------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str  # "seed:index": generate() rebuilds the case from it
    category: str
    kind: str
    pieces: list[bytes]  # sent in order, `pause` seconds apart
    pause: float = 0.0
    half_close: bool = False  # shut our side once everything is sent (the request is cut short)
    expect: frozenset | None = None  # the right statuses of the first response; None: any allowed one
    codes: frozenset | None = None  # the right exception codes of the first response, when it is an error
    may_drop: bool = False  # closing without an answer is right for this case
    head: bool = False  # the first request is HEAD: its response has no body
    parallel: list[bytes] = field(default_factory=list)  # requests sent at the same time on connections of their own


@dataclass
class Corpus:
    """Real requests of the clients the endpoint serves, built once per endpoint (insert bodies in each
    input format are the engine's own output of a few sample rows)."""

    encodings: dict[str, bytes]  # format name -> data of SAMPLE_ROWS in it


def _auth() -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())


def request(method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
            chunked: bool = False, auth: bool = True, length: bool = True, version: str = "HTTP/1.1") -> bytes:
    """An HTTP/1.1 request as bytes, as a well-behaved client would send it."""
    hs = [("Host", "127.0.0.1")] + ([_auth()] if auth else []) + list(headers or [])
    if chunked:
        hs.append(("Transfer-Encoding", "chunked"))
        out = b""
        pos = 0
        while pos < len(body):
            n = min(len(body) - pos, 4096)
            out += b"%x\r\n" % n + body[pos:pos + n] + b"\r\n"
            pos += n
        body = out + b"0\r\n\r\n"
    elif length and (body or method == "POST"):
        hs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    return head.encode("latin-1") + body


def _q(sql: str, **params: str) -> str:
    """A target `/?query=...&k=v` with everything percent-encoded."""
    parts = [f"query={quote(sql, safe='')}"] if sql else []
    parts += [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items()]
    return "/?" + "&".join(parts)


_BOMBS: dict[tuple[str, int], bytes] = {}


def _compress(data: bytes, enc: str) -> bytes:
    from swarmlens.embedded.codecs import http_encode  # the endpoint's own encoder of each Content-Encoding

    return http_encode(data, enc)


def bomb(enc: str, size: int) -> bytes:
    """`size` bytes of valid TSV rows for the scratch table (one repeated line), compressed: a small
    body that expands far beyond the body limit. Cached: every case of an encoding and size shares it."""
    key = (enc, size)
    if key not in _BOMBS:
        line = b"1\tbomb\t0.5\t2026-01-01 00:00:00.000\t[]\t\\N\n"
        unit = line * (65536 // len(line))
        if enc in ("gzip", "deflate", "zstd", "lz4"):
            # compressed piecewise: the expanded bytes never sit in memory whole
            if enc == "gzip":
                c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            elif enc == "deflate":
                c = zlib.compressobj(9)
            else:
                c = None
            if c is not None:
                out = bytearray()
                for _ in range(size // len(unit) + 1):
                    out += c.compress(unit)
                out += c.flush()
            elif enc == "zstd":
                zc = _zstd.ZstdCompressor()
                out = bytearray()
                for _ in range(size // len(unit) + 1):
                    out += zc.compress(unit)
                out += zc.flush()
            else:
                lc = lz4.frame.LZ4FrameCompressor()
                out = bytearray(lc.begin())
                for _ in range(size // len(unit) + 1):
                    out += lc.compress(unit)
                out += lc.flush()
            _BOMBS[key] = bytes(out)
    return _BOMBS[key]


def native_block(payload: bytes, method: int = codecs.METHOD_LZ4, csize: int | None = None,
                 dsize: int | None = None, bad_checksum: bool = False) -> bytes:
    """One ClickHouse compressed block, optionally with a lying header or checksum."""
    if method == codecs.METHOD_LZ4:
        comp = lz4.block.compress(payload, store_size=False)
    elif method == codecs.METHOD_ZSTD:
        comp = _zstd.compress(payload)
    else:
        comp = payload
    body = struct.pack("<BII", method, len(comp) + 9 if csize is None else csize,
                       len(payload) if dsize is None else dsize) + comp
    ck = codecs.checksum(body)
    if bad_checksum:
        ck = bytes([ck[0] ^ 0x5A]) + ck[1:]
    return ck + body


def _flip(rng: random.Random, data: bytes, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _tsv_rows(rng: random.Random, n: int) -> bytes:
    return b"".join(b"%d\tr%d\t%d.5\t2026-02-03 04:05:06.789\t['a','b']\t%d\n" % (
        rng.randrange(1 << 40), i, i, rng.randrange(-100, 100)) for i in range(n))


# Statements the sandbox must refuse with Code 497 (sent by POST, so readonly does not answer first).
SANDBOX_REFUSED = (
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
    "SELECT 1 INTO OUTFILE '/tmp/swarmlens-fuzz-outfile'",
    "SYSTEM SHUTDOWN",
    "SYSTEM RELOAD CONFIG",
    "CREATE TABLE fuzz_scratch.evil (s String) ENGINE = File(TSV, '/tmp/swarmlens-fuzz-evil')",
    "INSERT INTO FUNCTION file('/tmp/swarmlens-fuzz-x', 'TSV', 's String') VALUES ('x')",
    "SELECT * FROM executable('id', 'TSV', 's String')",
    "SELECT file('/etc/hostname')",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "CREATE DATABASE fuzz_evil ENGINE = MySQL('127.0.0.1:1', 'db', 'u', 'p')",
    "BACKUP DATABASE fuzz_guard TO File('/tmp/swarmlens-fuzz-backup')",
    "select * from FILE('/etc/passwd' , 'LineAsString') /* comment */",
    "WITH (SELECT 1) AS x SELECT * FROM (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    "SELECT 1 SETTINGS format_schema = '/etc/passwd'",
    "CREATE DICTIONARY fuzz_scratch.d (k UInt64, v String) PRIMARY KEY k "
    "SOURCE(EXECUTABLE(COMMAND 'id' FORMAT TSV)) LAYOUT(FLAT()) LIFETIME(0)",
)


class Generator:
    """Builds case `i` of a seed. Categories take turns, so every run of n cases covers each of them
    about n / len(CATEGORIES) times."""

    CATEGORIES = ("compression", "native_blocks", "chunked", "request_line", "headers", "params", "multipart",
                  "sql", "mutation", "concurrent")

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def generate(self, seed: int, i: int) -> Case:
        rng = random.Random(f"{seed}:{i}")
        category = self.CATEGORIES[i % len(self.CATEGORIES)]
        case = getattr(self, "_" + category)(rng)
        case.id = f"{seed}:{i}"
        case.category = category
        return case

    # -- corpus of real requests -------------------------------------------------------------------
    def valid_requests(self, rng: random.Random) -> list[tuple[str, bytes]]:
        fmt = rng.choice(FORMATS)
        data = self.corpus.encodings[fmt]
        table = f"{SCRATCH}.t"
        sid = f"fuzz-session-{rng.randrange(4)}"
        ext = _multipart(rng, [("query", b"SELECT count(), sum(x) FROM ext"), ("ext_structure", b"x UInt32")],
                         [("ext", "ext.tsv", b"1\n2\n3\n")])
        return [
            ("select_get", request("GET", _q("SELECT number, toString(number) FROM numbers(3)"))),
            ("select_post", request("POST", "/", body=b"SELECT 1 AS x, 'a' AS y FORMAT JSONEachRow")),
            ("select_params", request("GET", _q("SELECT {a:UInt8} + 1, {s:String}", param_a="41", param_s="x'y"))),
            ("select_settings", request("GET", _q("SELECT getSetting('max_threads')", max_threads="2",
                                                  default_format="JSONCompact"))),
            ("select_native", request("GET", _q("SELECT number FROM numbers(10)", default_format="Native",
                                                compress="1"))),
            ("select_gzip", request("GET", _q("SELECT number FROM numbers(100)", enable_http_compression="1"),
                                    [("Accept-Encoding", rng.choice(["gzip", "deflate", "lz4", "zstd", "br, gzip;q=0.5"]))])),
            ("insert_" + fmt, request("POST", _q(f"INSERT INTO {table} FORMAT {fmt}"), body=data)),
            ("insert_body_sql", request("POST", "/", body=f"INSERT INTO {table} FORMAT {fmt}\n".encode() + data)),
            ("insert_chunked", request("POST", _q(f"INSERT INTO {table} FORMAT {fmt}"), body=data, chunked=True)),
            ("insert_gzip", request("POST", _q(f"INSERT INTO {table} FORMAT {fmt}"), [("Content-Encoding", "gzip")],
                                    body=gzip.compress(data))),
            ("insert_blocks", request("POST", _q(f"INSERT INTO {table} FORMAT {fmt}", decompress="1"),
                                      body=native_block(data))),
            ("insert_values", request("POST", "/", body=f"INSERT INTO {table} (id, s) VALUES (1, 'v'), (2, 'w')".encode())),
            ("session_set", request("POST", _q("SET max_threads = 3", session_id=sid))),
            ("session_select", request("GET", _q("SELECT getSetting('max_threads')", session_id=sid,
                                                 session_timeout="5"))),
            ("session_close", request("GET", _q("SELECT 1", session_id=sid, close_session="1"))),
            ("kill_query", request("POST", "/", body=b"KILL QUERY WHERE query_id = 'fuzz-none' SYNC")),
            ("external_data", request("POST", _q("", **{}),
                                      [("Content-Type", f"multipart/form-data; boundary={ext[0]}")], body=ext[1])),
            ("ping", request("GET", "/ping")),
        ]

    # -- compression bombs and broken compressed bodies --------------------------------------------
    def _compression(self, rng: random.Random) -> Case:
        enc = rng.choice(["gzip", "deflate", "lz4", "zstd"])
        target = _q(f"INSERT INTO {SCRATCH}.t FORMAT TabSeparated")
        kind = rng.choice(["bomb", "bomb", "truncated", "corrupt", "wrong_declared", "unknown", "garbage",
                           "br", "listed", "empty", "trailing_garbage", "small_valid"])
        data = _tsv_rows(rng, rng.randrange(1, 50))
        headers = [("Content-Encoding", enc)]
        expect, may_drop, half = None, False, False
        if kind == "bomb":
            size = rng.choice([MAX_BODY * 2, MAX_BODY * 64, 256 << 20, 1 << 30])
            body = bomb(enc, size)
            if rng.random() < 0.3:  # the bomb as SQL (no INSERT head): the body limit stops it all the same
                target = "/"
            expect = frozenset({413})
        elif kind == "truncated":
            full = _compress(data, enc)
            body = full[:rng.randrange(1, max(2, len(full) - 1))]
            expect = frozenset({400})
        elif kind == "corrupt":
            body = _flip(rng, _compress(data, enc), rng.randrange(1, 6))
        elif kind == "wrong_declared":
            other = rng.choice([e for e in ("gzip", "deflate", "lz4", "zstd") if e != enc])
            body = _compress(data, other)
            expect = frozenset({400})
        elif kind == "unknown":
            headers = [("Content-Encoding", rng.choice(["compress", "x-snappy", "bzip2", "xz", "gzip;q=1",
                                                        "\x7fgzip", "identity, gzip", "*"]))]
            body = _compress(data, enc)
            expect = frozenset({400})
        elif kind == "br":
            headers = [("Content-Encoding", "br")]
            body = rng.randbytes(rng.randrange(1, 2000))
            expect = frozenset({400})  # not decoded at all (Code 89): a br bomb cannot expand
        elif kind == "listed":  # two codings, as HTTP allows: gzip inside deflate, say
            inner = rng.choice(["gzip", "deflate"])
            headers = [("Content-Encoding", f"{inner}, {enc}")]
            body = _compress(_compress(data, inner), enc)
            expect = frozenset({400})  # a server decodes one coding
        elif kind == "garbage":
            body = rng.randbytes(rng.randrange(0, 5000))
            expect = frozenset({400})
        elif kind == "empty":
            body = b""
        elif kind == "trailing_garbage":
            body = _compress(data, enc) + rng.randbytes(rng.randrange(1, 64))
        else:
            body = _compress(data, enc)
            expect = frozenset({200})
        chunked = rng.random() < 0.3
        codes = {"bomb": {0}, "truncated": {271}, "wrong_declared": {271}, "unknown": {89}, "br": {89}, "listed": {89},
                 "garbage": {271}}.get(kind)
        return Case("", "", f"{kind}/{enc}", [request("POST", target, headers, body, chunked=chunked)],
                    expect=expect, may_drop=may_drop, half_close=half, codes=frozenset(codes) if codes else None)

    def _native_blocks(self, rng: random.Random) -> Case:
        data = _tsv_rows(rng, rng.randrange(1, 30))
        method = rng.choice([codecs.METHOD_LZ4, codecs.METHOD_ZSTD, codecs.METHOD_NONE])
        kind = rng.choice(["bad_checksum", "huge_csize", "huge_dsize", "bad_method", "truncated", "wrong_dsize",
                           "tiny_csize", "bomb", "random", "short_header", "valid_then_bad", "valid",
                           "http_and_blocks", "select_compress"])
        expect: frozenset | None = frozenset({400})
        target = _q(f"INSERT INTO {SCRATCH}.t FORMAT TabSeparated", decompress="1")
        headers: list = []
        if kind == "bad_checksum":
            body = native_block(data, method, bad_checksum=True)
        elif kind == "huge_csize":
            body = native_block(data, method, csize=rng.choice([0xFFFFFFFF, (64 << 20) + 10, 1 << 30]))
        elif kind == "huge_dsize":
            body = native_block(data, method, dsize=rng.choice([0xFFFFFFFF, (64 << 20) + 1, 1 << 31]))
        elif kind == "bad_method":
            raw = native_block(data, method)
            bad = rng.choice([0x00, 0x01, 0x03, 0x81, 0x91, 0xFF, 0x91])
            body = native_block(raw[25:], bad) if rng.random() < 0.5 else raw[:16] + bytes([bad]) + raw[17:]
        elif kind == "truncated":
            full = native_block(data, method)
            body = full[:rng.randrange(1, len(full))]
        elif kind == "wrong_dsize":
            body = native_block(data, method, dsize=max(0, len(data) + rng.choice([-5, -1, 1, 100, 4096])))
            if method == codecs.METHOD_NONE:
                expect = None  # the size of a stored block is not checked against anything
        elif kind == "tiny_csize":
            body = native_block(data, method, csize=rng.randrange(0, 9))
        elif kind == "bomb":  # many blocks, each 64 MiB of zeros declared and decoded
            m = codecs.METHOD_ZSTD if method == codecs.METHOD_ZSTD else codecs.METHOD_LZ4
            if ("native", m) not in _BOMBS:
                _BOMBS[("native", m)] = native_block(bytes(codecs.MAX_BLOCK_BYTES), m)
            body = _BOMBS[("native", m)] * rng.randrange(2, 6)
            expect = frozenset({413, 400})  # zeros are not TSV: whichever the endpoint finds first
        elif kind == "random":
            body = rng.randbytes(rng.randrange(1, 3000))
        elif kind == "short_header":
            body = rng.randbytes(rng.randrange(1, 25))
        elif kind == "valid_then_bad":
            body = native_block(data, method) + native_block(data, method, bad_checksum=True)
        elif kind == "http_and_blocks":
            enc = rng.choice(["gzip", "zstd", "lz4", "deflate"])
            body = _compress(native_block(data, method), enc)
            if rng.random() < 0.5:
                body = _flip(rng, body, 2)
                expect = None
            else:
                expect = frozenset({200})
            headers = [("Content-Encoding", enc)]
        elif kind == "select_compress":
            target = _q(rng.choice(["SELECT number, toString(number) FROM numbers(1000)", "SELECT throwIf(number = 5) FROM numbers(10)",
                                    "SELECT 1 FORMAT Native", "SELECT * FROM numbers(10) FORMAT JSON"]),
                        compress="1", **({"wait_end_of_query": "1"} if rng.random() < 0.5 else {}))
            return Case("", "", f"{kind}", [request("GET", target)], expect=None)
        else:
            body = native_block(data, method)
            expect = frozenset({200})
        codes = {"bad_checksum": {40}, "huge_csize": {246}, "huge_dsize": {246}, "bad_method": {40, 89},
                 "truncated": {33}, "wrong_dsize": {271}, "tiny_csize": {246}, "random": {33, 40, 89, 246, 271},
                 "short_header": {33}, "valid_then_bad": {40}, "bomb": {0, 27, 117}}.get(kind)
        return Case("", "", f"{kind}/{method:#x}", [request("POST", target, headers, body, chunked=rng.random() < 0.3)],
                    expect=expect, codes=frozenset(codes) if codes else None)

    # -- chunked transfer encoding and framing -----------------------------------------------------
    def _chunked(self, rng: random.Random) -> Case:
        target = _q(f"INSERT INTO {SCRATCH}.t FORMAT TabSeparated")
        data = _tsv_rows(rng, rng.randrange(1, 20))
        head = (f"POST {target} HTTP/1.1\r\nHost: x\r\n{_auth()[0]}: {_auth()[1]}\r\n").encode()
        kind = rng.choice(["bad_hex", "missing_crlf", "negative", "huge_size", "extension", "trailer",
                           "cl_and_te", "cl_shorter", "cl_longer", "truncated", "slow", "te_variants",
                           "size_beyond_data", "zero_then_data", "duplicate_cl", "bad_cl"])
        expect, may_drop, half, pause = None, False, False, 0.0
        pieces: list[bytes]
        if kind == "bad_hex":
            size = rng.choice([b"zz", b"0x10", b"1 0", b"+5", b"", b"\xff", b"1\x00", b"g"])
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n" + data + b"\r\n0\r\n\r\n"]
            expect, may_drop = frozenset({400}), True
        elif kind == "missing_crlf":
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(data) + data +
                      rng.choice([b"", b"\r", b"\n", b"XX"]) + b"0\r\n\r\n"]
            expect, may_drop, half = frozenset({400}), True, True
        elif kind == "negative":
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n-%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"]
            expect, may_drop = frozenset({400}), True
        elif kind == "huge_size":
            size = rng.choice([b"ffffffffffffffff", b"ffffffffffffffffffffffffffff", b"7fffffff", b"1" + b"0" * 40])
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n" + data]
            expect, may_drop, half = frozenset({400, 413}), True, True
        elif kind == "extension":
            ext = rng.choice([b";a=b", b"; name=\"v\"", b";;", b";\xff", b";" + b"x" * 5000, b" ;a"])
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x" % len(data) + ext + b"\r\n" + data +
                      b"\r\n0\r\n\r\n"]
            may_drop = True
        elif kind == "trailer":
            tr = rng.choice([b"X-Fuzz: 1\r\n", b"Content-Length: 5\r\n", b"bad trailer\r\n", b"X: \xff\r\n",
                             b"Transfer-Encoding: gzip\r\n", b"X-T: " + b"v" * 70000 + b"\r\n"])
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(data) + data + b"\r\n0\r\n" +
                      tr + b"\r\n"]
            may_drop = True
        elif kind == "cl_and_te":
            pieces = [head + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(data) +
                      data + b"\r\n0\r\n\r\n"]
            expect, may_drop = frozenset({400}), True
        elif kind == "cl_shorter":
            pieces = [head + b"Content-Length: %d\r\n\r\n" % rng.randrange(0, len(data)) + data]
            may_drop = True  # the rest is read as the next request: garbage
        elif kind == "cl_longer":
            pieces = [head + b"Content-Length: %d\r\n\r\n" % (len(data) + rng.randrange(1, 10000)) + data]
            may_drop, half = True, True
        elif kind == "truncated":
            full = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
            pieces = [full[:rng.randrange(len(head) + 5, len(full) - 1)]]
            may_drop, half = True, True
        elif kind == "slow":
            full = request("POST", target, body=data, chunked=rng.random() < 0.5)
            cuts = sorted(rng.sample(range(1, len(full)), min(len(full) - 1, rng.randrange(2, 8))))
            pieces = [full[a:b] for a, b in zip([0] + cuts, cuts + [len(full)])]
            pause = rng.choice([0.001, 0.01, 0.05])
            if rng.random() < 0.3:  # and the client gives up part way
                pieces = pieces[:-1]
                half, may_drop = True, True
            else:
                expect = frozenset({200})
        elif kind == "te_variants":
            te = rng.choice([b"gzip, chunked", b"chunked, identity", b"xchunked", b"chunked\r\nTransfer-Encoding: chunked",
                             b"identity", b"CHUNKED", b" chunked", b"chunked;q=1"])
            pieces = [head + b"Transfer-Encoding: " + te + b"\r\n\r\n" + b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"]
            may_drop, half = True, True
        elif kind == "size_beyond_data":
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % (len(data) + 100) + data + b"\r\n0\r\n\r\n"]
            may_drop, half = True, True
        elif kind == "zero_then_data":
            pieces = [head + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + data]
            may_drop = True
        elif kind == "duplicate_cl":
            n = len(data)
            pieces = [head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (n, n + rng.choice([0, 1, -1])) + data]
            may_drop, half = True, True
        else:  # bad_cl
            cl = rng.choice([b"-1", b"abc", b"1e3", b"0x10", b"99999999999999999999999", b"", b"+5", b"5 5"])
            pieces = [head + b"Content-Length: " + cl + b"\r\n\r\n" + data]
            expect, may_drop, half = frozenset({400, 413}), True, True
        return Case("", "", kind, pieces, pause=pause, half_close=half, expect=expect, may_drop=may_drop)

    # -- request lines -----------------------------------------------------------------------------
    def _request_line(self, rng: random.Random) -> Case:
        auth = f"{_auth()[0]}: {_auth()[1]}\r\n".encode()
        kind = rng.choice(["method", "http09", "version", "overlong_target", "non_ascii_target", "bad_target",
                           "garbage", "bare_lf", "empty_lines", "absolute_target", "path", "head"])
        expect, may_drop, half = None, True, False
        q = _q("SELECT 1").encode()
        if kind == "method":
            m = rng.choice([b"PUT", b"DELETE", b"PATCH", b"TRACE", b"CONNECT", b"BREW", b"get", b"Post", b"G\x00T",
                            b"GET\xff", b"X" * 300, b"OPTIONS", b"PRI"])
            pieces = [m + b" " + q + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 0\r\n\r\n"]
        elif kind == "http09":
            pieces = [b"GET " + q + b"\r\n"]
            half = True
        elif kind == "version":
            v = rng.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/11", b"HTTP/1.1 x", b"http/1.1",
                            b"HTTP/", b"HTTP/9.9"])
            pieces = [b"GET " + q + b" " + v + b"\r\nHost: x\r\n" + auth + b"\r\n"]
            half = v == b"HTTP/1.0"  # a 1.0 client without keep-alive
        elif kind == "overlong_target":
            n = rng.choice([8 << 10, 100 << 10, (1 << 20) + 10, 3 << 20])
            pieces = [b"GET /?query=SELECT+" + b"1" * n + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
            expect = frozenset({400, 413, 431})
        elif kind == "non_ascii_target":
            pieces = [b"GET /?query=SELECT+'" + rng.randbytes(rng.randrange(1, 40)).replace(b" ", b"_").replace(b"\r", b"_").replace(b"\n", b"_")
                      + b"' HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
        elif kind == "bad_target":
            t = rng.choice([b"*", b"", b"//", b"/?", b"/?&&&=&=", b"/query?query=SELECT%201#frag", b"/..%2f..%2fetc",
                            b"/%00", b"/?query", b"?query=SELECT+1", b"/ping?x=%zz"])
            pieces = [b"GET " + t + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
        elif kind == "garbage":
            pieces = [rng.randbytes(rng.randrange(1, 4000))]
            half = True
        elif kind == "bare_lf":
            pieces = [b"GET " + q + b" HTTP/1.1\nHost: x\n" + auth.replace(b"\r\n", b"\n") + b"\n"]
        elif kind == "empty_lines":
            pieces = [b"\r\n" * rng.randrange(1, 50) + b"GET " + q + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
        elif kind == "head":  # the answer has headers only, whatever the result
            target = rng.choice([_q("SELECT number FROM numbers(1000)"), _q("SELECT 1 FORMAT JSON"), _q("SELEC 1"),
                                 "/ping", _q("SELECT number FROM numbers(10)", wait_end_of_query="1")])
            return Case("", "", kind, [request("HEAD", target)], expect=frozenset({200, 400}), head=True)
        elif kind == "absolute_target":
            pieces = [b"GET http://127.0.0.1" + q + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
        else:
            p = rng.choice([b"/play", b"/dashboard", b"/replicas_status", b"/ping/", b"/QUERY", b"/query/",
                            b"/metrics", b"/js/x"])
            pieces = [b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"]
            expect, may_drop = frozenset({200, 400, 404}), False  # /query/ without a query: Empty query
        return Case("", "", kind, pieces, expect=expect, may_drop=may_drop, half_close=half)

    # -- headers -----------------------------------------------------------------------------------
    def _headers(self, rng: random.Random) -> Case:
        kind = rng.choice(["overlong_value", "many", "no_colon", "space_before_colon", "obs_fold", "non_ascii",
                           "nul", "dup_auth", "dup_user", "dup_database", "dup_format", "conflicting_query_id",
                           "dup_session", "bad_basic", "injection", "expect", "host", "content_type",
                           "accept_encoding"])
        q = _q("SELECT 1, currentDatabase()")
        base = f"GET {q} HTTP/1.1\r\nHost: x\r\n".encode()
        auth = f"{_auth()[0]}: {_auth()[1]}\r\n".encode()
        expect, may_drop = None, True
        if kind == "overlong_value":
            n = rng.choice([64 << 10, (1 << 20) + 10, 2 << 20])
            pieces = [base + auth + b"X-Long: " + b"v" * n + b"\r\n\r\n"]
            # h11 enforces the 1 MiB head limit on a head still incomplete: one up to a read (1 MiB) beyond may pass
            expect = frozenset({200, 400, 431}) if n < (2 << 20) else frozenset({400, 431})
        elif kind == "many":
            pieces = [base + auth + b"".join(b"X-H%d: v\r\n" % k for k in range(rng.choice([100, 5000, 60000]))) + b"\r\n"]
        elif kind == "no_colon":
            pieces = [base + auth + b"NoColonHere\r\n\r\n"]
            expect = frozenset({400})
        elif kind == "space_before_colon":
            pieces = [base + auth + b"X-ClickHouse-User : default\r\n\r\n"]
            expect = frozenset({400})
        elif kind == "obs_fold":
            pieces = [base + auth + b"X-A: one\r\n  two\r\n\r\n"]
            expect = frozenset({200, 400})  # RFC 9112 5.2: refuse, or replace the fold with a space (h11)
        elif kind == "non_ascii":
            pieces = [base + auth + b"X-" + rng.choice([b"\xc3\xa9", b"\xff", b""]) + b"A: " + rng.randbytes(20).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n\r\n"]
        elif kind == "nul":
            pieces = [base + auth + b"X-A: a\x00b\r\n\r\n"]
            expect = frozenset({400})
        elif kind == "dup_auth":
            other = rng.choice([f"Basic {base64.b64encode(b'default:wrong').decode()}", "Basic !!!", "Bearer x"])
            order = [auth, f"Authorization: {other}\r\n".encode()]
            rng.shuffle(order)
            pieces = [base + b"".join(order) + b"\r\n"]
            expect = frozenset({200, 401, 403})
            may_drop = False
        elif kind == "dup_user":
            pieces = [base + b"X-ClickHouse-User: default\r\nX-ClickHouse-Key: " + PASSWORD.encode() +
                      b"\r\nX-ClickHouse-User: other\r\nX-ClickHouse-Key: x\r\n\r\n"]
            expect, may_drop = frozenset({200, 401, 403}), False
        elif kind == "dup_database":
            pieces = [base + auth + b"X-ClickHouse-Database: " + GUARD.encode() + b"\r\nX-ClickHouse-Database: nope_"
                      + str(rng.randrange(1000)).encode() + b"\r\n\r\n"]
            expect, may_drop = frozenset({200, 404}), False
        elif kind == "dup_format":
            pieces = [base + auth + b"X-ClickHouse-Format: JSON\r\nX-ClickHouse-Format: " +
                      rng.choice([b"CSV", b"NoSuchFormat", b"JSON\x01", b"", b"Native"]) + b"\r\n\r\n"]
        elif kind == "conflicting_query_id":
            qid = rng.choice(["a", "a\r\nSet-Cookie: x=1", "\u00e9\u00e9", "x" * 5000, "%00", ""])
            pieces = [f"GET {_q('SELECT 1', query_id='fuzz-1')}&query_id={quote(qid, safe='')} HTTP/1.1\r\n".encode()
                      + b"Host: x\r\n" + auth + b"\r\n"]
            may_drop = False
        elif kind == "dup_session":
            sid = rng.choice(["s1", "s\r\nX-Injected: 1", "\u00e9", "", "x" * 3000])
            pieces = [f"GET {_q('SELECT 1', session_id='fuzz-session-0')}&session_id={quote(sid, safe='')}"
                      f"&session_timeout=1 HTTP/1.1\r\n".encode() + b"Host: x\r\n" + auth + b"\r\n"]
            may_drop = False
        elif kind == "bad_basic":
            v = rng.choice([b"Basic", b"Basic ", b"Basic !!!", b"Basic " + base64.b64encode(b"\xff\xfe:\xfd"),
                            b"Basic " + base64.b64encode(b"nocolon"), b"Basic " + base64.b64encode(b"default:" + PASSWORD.encode())[:-2],
                            b"basic " + base64.b64encode(b"default:" + PASSWORD.encode()), b"Digest x=y",
                            b"Basic " + b"A" * 100000, b"Basic " + base64.b64encode(b":"), b"Basic =" ,
                            b"Basic " + base64.b64encode(("default:" + PASSWORD + "\u00e9").encode())])
            pieces = [base + b"Authorization: " + v + b"\r\n\r\n"]
            expect, may_drop = frozenset({200, 400, 401, 403}), False
        elif kind == "injection":
            target = rng.choice([
                _q("SELECT 1", query_id="q\r\nSet-Cookie: evil=1"),
                _q("SELECT 1", session_id="s\r\nX-Evil: 1"),
                _q("SELECT 1", default_format="TSV\r\nX-Evil: 1"),
                _q("SELECT 1", database="db\r\nX-Evil: 1"),
                _q("SELECT 1", query_id="\u2028\u0085x"),
                _q("SELECT 1", query_id="q\x00"),
                _q("SELECT 1", default_format="CSV\nX: 1"),
            ])
            pieces = [f"GET {target} HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n"]
            may_drop = False
        elif kind == "expect":
            pieces = [request("POST", _q(f"INSERT INTO {SCRATCH}.t FORMAT TabSeparated"),
                              [("Expect", rng.choice(["100-continue", "200-ok", "100-CONTINUE"]))], _tsv_rows(rng, 3))]
            may_drop = False
        elif kind == "accept_encoding":
            ae = rng.choice(["gzip;q=abc", "lz4;q=0.0, gzip;q=0", "*", "br", "zstd;q=0.5, lz4;q=0.4", "x-gzip",
                             "deflate;q=1.5", ",,,", "gzip;;q=1", "\u00e9", "identity;q=0", "lz4, zstd, gzip, deflate"])
            sql = rng.choice(["SELECT number, toString(number) FROM numbers(5000)", "SELECT throwIf(number = 3000) FROM numbers(5000)",
                              "SELECT 1 FORMAT JSON", "SELEC 1"])
            extra = {"wait_end_of_query": "1"} if rng.random() < 0.3 else {}
            if rng.random() < 0.3:
                extra["http_zlib_compression_level"] = str(rng.randrange(1, 10))
            pieces = [request("GET", _q(sql, enable_http_compression="1", **extra), [("Accept-Encoding", ae)])]
            may_drop = False
        elif kind == "host":
            pieces = [f"GET {q} HTTP/1.1\r\n".encode() + auth + rng.choice([b"", b"Host: a\r\nHost: b\r\n", b"Host: \xff\r\n"]) + b"\r\n"]
        else:
            ct = rng.choice([b"multipart/form-data", b"multipart/form-data; boundary=", b"multipart/form-data; boundary=\"\"",
                             b"application/x-www-form-urlencoded", b"text/plain; charset=\xff", b"multipart/mixed; boundary=x"])
            pieces = [b"POST / HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: " + ct + b"\r\nContent-Length: 8\r\n\r\nSELECT 1"]
        return Case("", "", kind, pieces, expect=expect, may_drop=may_drop)

    # -- query-string parameters -------------------------------------------------------------------
    def _params(self, rng: random.Random) -> Case:
        kind = rng.choice(["param_type", "param_huge", "param_missing", "percent", "unknown_setting",
                           "setting_type", "http_param_type", "session_params", "format_names", "database",
                           "readonly", "many_params", "denied_setting", "query_and_body"])
        expect, may_drop = None, False
        method, body = "GET", b""
        if kind == "param_type":
            t = rng.choice(["UInt8", "Int64", "DateTime64(3)", "UUID", "Array(String)", "Map(String, UInt8)",
                            "Decimal(10, 2)", "IPv4", "Enum8('a' = 1)", "Nullable(Date)", "Tuple(UInt8, String)",
                            "FixedString(2)", "LowCardinality(String)", "NoSuchType", "String) FROM system.one --"])
            v = rng.choice(["-1", "300", "abc", "", "\\N", "1e400", "[1,2", "{'a':'b'}", "0x10", "\x00",
                            "2026-13-45 25:61:61", "\u00e9" * 10, "'; DROP DATABASE fuzz_guard; --", "9" * 100])
            target = _q(f"SELECT {{p:{t}}}", param_p=v)
        elif kind == "param_huge":
            n = rng.choice([10_000, 200_000, 2_000_000])
            target = _q("SELECT length({p:String})", param_p="x" * n)
            expect = frozenset({200, 400, 413, 431}) if n < 1 << 20 else frozenset({400, 431})
            may_drop = n >= 1 << 20
        elif kind == "param_missing":
            target = _q("SELECT {a:UInt8}, {b:String}", param_a="1")
            expect = frozenset({400, 404})
        elif kind == "percent":
            raw = rng.choice(["%zz", "%", "%C3%28", "%FF%FE", "%00", "%%31", "%e2%82", "+%2B+", "%u0041"])
            target = f"/?query=SELECT+'{raw}'" + rng.choice(["", f"&param_x={raw}", f"&{raw}=1", f"&max_threads={raw}"])
        elif kind == "unknown_setting":
            name = rng.choice(["no_such_setting", "max_threadz", "x" * 200, "1abc", "max-threads", "\u00e9", "_"])
            target = _q("SELECT 1", **{name: "1"})
            expect = frozenset({200, 400, 404})
        elif kind == "setting_type":
            name = rng.choice(["max_threads", "max_result_rows", "max_block_size", "output_format_json_quote_64bit_integers",
                               "max_execution_time", "timeout_overflow_mode", "max_memory_usage", "join_algorithm",
                               "date_time_input_format", "session_timezone", "max_query_size", "max_ast_depth"])
            v = rng.choice(["abc", "-1", "1e10", "18446744073709551616", "", "nan", "inf", "true", "'1'", "0x10", "\x01",
                            "999999999999999999999999", "Europe/Nowhere"])
            target = _q("SELECT number FROM numbers(3)", **{name: v})
        elif kind == "http_param_type":
            name = rng.choice(["wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
                               "enable_http_compression", "http_zlib_compression_level", "compress", "decompress",
                               "replace_running_query", "readonly", "buffer_size", "close_session", "session_check",
                               "client_protocol_version", "run_query_in_background", "stacktrace"])
            v = rng.choice(["abc", "-1", "99", "1e3", "", "true", "2", "18446744073709551616", "\u00e9", "0"])
            target = _q("SELECT number FROM numbers(3)", **{name: v, "enable_http_compression": "1"} if name.startswith("http_z")
                        else {name: v})
            return Case("", "", f"{kind}/{name}", [request("GET", target, [("Accept-Encoding", "gzip")])], expect=None)
        elif kind == "session_params":
            sid = rng.choice(["fuzz-session-1", "fuzz-session-2"])
            target = _q("SELECT 1", session_id=sid, session_timeout=rng.choice(["nan", "inf", "-inf", "-1", "0", "1e309",
                                                                                 "abc", "", "99999999", "0x10"]),
                        **({"session_check": "1"} if rng.random() < 0.3 else {}))
        elif kind == "format_names":
            f = rng.choice(["NoSuch", "", "JSON\x00", "../../etc/passwd", "Template", "CapnProto", "Protobuf", "Regexp",
                            "Form", "Prometheus", "Markdown", "SQLInsert", "Npy", "Vertical", "x" * 1000])
            target = _q("SELECT 1 AS x", default_format=f)
        elif kind == "database":
            d = rng.choice(["nope", "", "system", "fuzz_guard`; DROP DATABASE fuzz_guard; --", "a\x00b", "x" * 1000,
                            "INFORMATION_SCHEMA", "\u00e9"])
            target = _q("SELECT count() FROM system.one", database=d)
        elif kind == "readonly":
            target = _q(rng.choice(["INSERT INTO fuzz_scratch.t (id) VALUES (1)", "SET max_threads = 1",
                                    "SELECT 1 SETTINGS max_threads = 1", "CREATE TABLE fuzz_scratch.ro (x UInt8) ENGINE = Memory"]),
                        readonly=rng.choice(["1", "2", "0", "3", "abc", "-1"]))
            method = rng.choice(["GET", "POST"])
        elif kind == "many_params":
            target = "/?query=SELECT+1&" + "&".join(f"p{k}=1" for k in range(rng.choice([100, 5000])))
        elif kind == "denied_setting":
            target = _q("SELECT 1", **{rng.choice(["format_schema", "dialect", "format_template_row",
                                                   "output_format_schema"]): rng.choice(["/etc/passwd", "prql", "kusto"])})
            expect = frozenset({403})
        else:
            target = _q("SELECT", param_x="1")
            method, body = "POST", rng.choice([b" {x:UInt8}", b"\xff", b"1; SELECT 2", b" 1 FORMAT", b""])
        return Case("", "", kind, [request(method, target, body=body)], expect=expect, may_drop=may_drop)

    # -- multipart/form-data and external data -----------------------------------------------------
    def _multipart(self, rng: random.Random) -> Case:
        kind = rng.choice(["broken_boundary", "no_end", "bad_structure", "bad_types", "bad_format", "huge_part",
                           "many_parts", "bad_names", "no_query", "structure_injection", "mismatched_data"])
        expect, may_drop, half = None, False, False
        fields = [("query", b"SELECT count() FROM ext")]
        files = [("ext", "f.tsv", b"1\n2\n")]
        structure = b"x UInt32"
        if kind == "bad_structure":
            structure = rng.choice([b"", b"x", b"x NoSuchType", b"x UInt32,", b"(", b"x UInt32) ENGINE = Log --",
                                    b"x UInt32, x UInt32", b"\xff UInt8", b"x Array(", b"x" * 3000 + b" UInt8"])
        elif kind == "structure_injection":
            structure = rng.choice([b"x String) ENGINE = File(TSV, '/etc/passwd') --",
                                    b"x String DEFAULT file('/etc/passwd')",
                                    b"x String) AS SELECT * FROM file('/etc/passwd', 'LineAsString') --",
                                    b"x String MATERIALIZED url('http://127.0.0.1:1/', 'LineAsString')"])
            expect = frozenset({400, 403, 404})
        fields.append(("ext_structure", structure))
        if kind == "bad_types":
            fields[-1] = ("ext_types", rng.choice([b"", b",", b"UInt8,,String", b"NoSuch", b"UInt8) --"]))
        elif kind == "bad_format":
            fields.append(("ext_format", rng.choice([b"NoSuch", b"", b"Native", b"Parquet", b"JSON\x00", b"x" * 100])))
        elif kind == "huge_part":
            files = [("ext", "f.tsv", b"1\n" * (MAX_BODY // 2 + rng.randrange(1, MAX_BODY)))]
            expect = frozenset({200, 413})
            may_drop = True
        elif kind == "many_parts":
            files = [(f"e{k}", "f", b"1\n") for k in range(rng.choice([50, 1200]))]
        elif kind == "bad_names":
            files = [(rng.choice(["", "a`b", "system", "\u00e9", "x" * 500, "ext\x00", "numbers"]), "f", b"1\n")]
        elif kind == "no_query":
            fields = fields[1:]
        elif kind == "mismatched_data":
            files = [("ext", "f", rng.choice([b"abc\n", b"\xff\xfe", b"1\t2\t3\n", b"-1\n", rng.randbytes(200)]))]
        boundary, body = _multipart(rng, fields, files)
        ctype = f"multipart/form-data; boundary={boundary}"
        if kind == "broken_boundary":
            mode = rng.choice(["other", "flip", "cut", "none_in_body"])
            if mode == "other":
                ctype = "multipart/form-data; boundary=not-the-one"
            elif mode == "flip":
                body = _flip(rng, body, rng.randrange(1, 10))
            elif mode == "cut":
                body = body[:rng.randrange(1, len(body))]
            else:
                body = b"SELECT 1"
        elif kind == "no_end":
            body = body[:body.rfind(b"--" + boundary.encode())]
        return Case("", "", kind, [request("POST", "/", [("Content-Type", ctype)], body)], expect=expect,
                    may_drop=may_drop, half_close=half)

    # -- SQL bodies --------------------------------------------------------------------------------
    def _sql(self, rng: random.Random) -> Case:
        kind = rng.choice(["random_bytes", "non_utf8", "huge", "deep_parens", "deep_functions", "long_chain",
                           "sandbox", "sandbox", "keyword_soup", "multi_statement", "deep_arrays", "huge_insert_sql",
                           "kill"])
        expect, may_drop = None, False
        if kind == "random_bytes":
            body = rng.randbytes(rng.randrange(1, 5000))
        elif kind == "non_utf8":
            body = b"SELECT '" + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]) + b"'"
            expect = frozenset({200, 400})
        elif kind == "huge":
            body = b"SELECT '" + b"x" * rng.choice([MAX_QUERY + 1, 2 * MAX_QUERY, MAX_BODY + 10]) + b"'"
            expect = frozenset({400, 413})
            may_drop = len(body) > MAX_BODY
        elif kind == "deep_parens":
            n = rng.choice([100, 1000, 10_000, 100_000])
            body = b"SELECT " + b"(" * n + b"1" + b")" * n
        elif kind == "deep_functions":
            n = rng.choice([100, 1000, 5000, 50_000])
            body = b"SELECT " + b"abs(" * n + b"1" + b")" * n
        elif kind == "long_chain":
            n = rng.choice([1000, 10_000, 40_000])
            body = b"SELECT " + b"+".join([b"1"] * n)
        elif kind == "deep_arrays":
            n = rng.choice([100, 1000, 20_000])
            body = b"SELECT " + b"[" * n + b"1" + b"]" * n
        elif kind == "sandbox":
            body = rng.choice(SANDBOX_REFUSED).encode()
            expect = frozenset({403})
            return Case("", "", kind, [request("POST", "/", body=body, chunked=rng.random() < 0.2)], expect=expect,
                        codes=frozenset({497}))
        elif kind == "keyword_soup":
            words = ["SELECT", "FROM", "WHERE", "(", ")", ",", "1", "'a'", "numbers(3)", "GROUP BY", "ORDER BY", "LIMIT",
                     "JOIN", "ON", "AS", "x", "*", "=", "NULL", "arrayJoin([1,2])", "FORMAT", "JSON", "SETTINGS",
                     "max_threads = 1", "UNION ALL", "INSERT INTO", "fuzz_scratch.t", "VALUES", "WITH", "CAST(1 AS String)",
                     "throwIf(1)", "sleep(0.01)", "system.one", "lambda(x, x)", "::", "[", "]", "{p:UInt8}", "?", ";", "--"]
            body = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 30))).encode()
        elif kind == "kill":
            body = rng.choice([b"KILL QUERY", b"KILL QUERY WHERE 1", b"KILL QUERY WHERE elapsed > 'abc' SYNC",
                               b"KILL QUERY WHERE query_id IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
                               b"KILL QUERY WHERE query_id = {q:String} TEST", b"KILL QUERY WHERE user = 'x' ASYNC FORMAT JSON",
                               b"KILL QUERY WHERE 1 FORMAT NoSuch", b"KILL QUERY WHERE throwIf(1)", b"KILL MUTATION WHERE 1",
                               b"KILL QUERY WHERE query LIKE '%' || (SELECT '\xff')"])
        elif kind == "multi_statement":
            body = rng.choice([b"SELECT 1; SELECT 2", b"SELECT 1;;", b"; SELECT 1", b"SELECT 1; DROP DATABASE fuzz_guard"])
        else:
            n = rng.choice([1000, 100_000])
            body = b"INSERT INTO fuzz_scratch.t (id) VALUES " + b",".join(b"(%d)" % k for k in range(n))
            expect = frozenset({200, 400})
        return Case("", "", kind, [request("POST", "/", body=body, chunked=rng.random() < 0.2)], expect=expect,
                    may_drop=may_drop)

    # -- requests at the same time on several connections -------------------------------------------
    def _concurrent(self, rng: random.Random) -> Case:
        """Sessions, query ids, KILL QUERY and the pool under contention: every answer is judged as
        any other (no 5xx, ClickHouse error bodies), whichever request wins the race."""
        kind = rng.choice(["same_session", "same_query_id", "replace_query", "kill", "pool", "insert_and_read",
                           "mutations"])
        tag = f"{rng.randrange(1 << 30):x}"
        n = rng.randrange(2, 5)
        if kind == "same_session":  # one wins, the others get 409 (SESSION_IS_LOCKED) or wait their turn
            reqs = [request("POST", _q(rng.choice(["SELECT sleep(0.2), getSetting('max_threads')", "SET max_threads = 2",
                                                   "CREATE TEMPORARY TABLE IF NOT EXISTS tt (x UInt8)", "SELECT 1"]),
                                       session_id=f"fuzz-conc-{tag}", **({"close_session": "1"} if rng.random() < 0.3 else {})))
                    for _ in range(n)]
        elif kind == "same_query_id":  # Code 216 for the one that comes second
            reqs = [request("GET", _q("SELECT sleep(0.3)", query_id=f"fuzz-q-{tag}")) for _ in range(n)]
        elif kind == "replace_query":
            reqs = [request("GET", _q("SELECT sleep(0.5)", query_id=f"fuzz-q-{tag}", replace_running_query=str(k % 2)))
                    for k in range(n)]
        elif kind == "kill":
            # a row every 0.3 s: the result keeps flowing until the KILL lands
            reqs = [request("GET", _q("SELECT sleepEachRow(0.3) FROM numbers(4) SETTINGS max_block_size = 1",
                                      query_id=f"fuzz-k-{tag}"))]
            reqs += [request("POST", "/", body=f"KILL QUERY WHERE query_id = 'fuzz-k-{tag}' "
                             f"{rng.choice(['SYNC', 'ASYNC', 'TEST'])}".encode()) for _ in range(n - 1)]
        elif kind == "pool":  # more requests than pooled connections (4)
            reqs = [request("GET", _q("SELECT sleep(0.2), number FROM numbers(3)")) for _ in range(n + 3)]
        elif kind == "insert_and_read":
            reqs = [request("POST", _q(f"INSERT INTO {SCRATCH}.t FORMAT TabSeparated"), body=_tsv_rows(rng, 20))
                    if k % 2 else request("GET", _q(f"SELECT count() FROM {SCRATCH}.t")) for k in range(n)]
        else:
            reqs = [_flip(rng, rng.choice(self.valid_requests(rng))[1], rng.randrange(0, 3)) for _ in range(n)]
        return Case("", "", kind, [reqs[0]], may_drop=kind == "mutations", parallel=reqs[1:])

    # -- mutations of real requests ----------------------------------------------------------------
    def _mutation(self, rng: random.Random) -> Case:
        name, req = rng.choice(self.valid_requests(rng))
        op = rng.choice(["flip", "flip", "truncate", "duplicate_slice", "repeat_request", "insert_bytes",
                         "delete_slice", "splice"])
        half = False
        if op == "flip":
            out = _flip(rng, req, rng.randrange(1, 9))
        elif op == "truncate":
            out = req[:rng.randrange(1, len(req))]
            half = True
        elif op == "duplicate_slice":
            a = rng.randrange(len(req))
            b = min(len(req), a + rng.randrange(1, 200))
            out = req[:b] + req[a:b] * rng.randrange(1, 5) + req[b:]
        elif op == "repeat_request":
            out = req * rng.randrange(2, 4)  # pipelined
        elif op == "insert_bytes":
            a = rng.randrange(len(req) + 1)
            out = req[:a] + rng.randbytes(rng.randrange(1, 50)) + req[a:]
        elif op == "delete_slice":
            a = rng.randrange(len(req))
            out = req[:a] + req[a + rng.randrange(1, 100):]
        else:
            _, other = rng.choice(self.valid_requests(rng))
            out = req[:rng.randrange(len(req))] + other[rng.randrange(len(other)):]
        return Case("", "", f"{op}/{name}", [out], half_close=half, may_drop=True)


def _multipart(rng: random.Random, fields, files) -> tuple[str, bytes]:
    boundary = "----fuzz" + "".join(rng.choice("abcdef0123456789") for _ in range(16))
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode() + value + b"\r\n"
    for name, filename, value in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode("utf-8") + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return boundary, bytes(out)


# -- responses ------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _parse_response(buf: bytes, head: bool, eof: bool = False):
    """(Response, bytes consumed), or None while incomplete. A response with neither Content-Length nor
    chunked framing (the answer to HTTP/1.0) ends with the connection: complete only at `eof`."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    pos = end + 4
    if head or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, b""), pos
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:
                tail = buf.find(b"\r\n\r\n", eol)
                if tail < 0 and not buf.startswith(b"\r\n", eol + 2):
                    return None
                return Response(status, headers, bytes(body)), (eol + 4 if buf.startswith(b"\r\n", eol + 2) else tail + 4)
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    if "content-length" not in headers:
        return (Response(status, headers, buf[pos:]), len(buf)) if eof else None
    n = int(headers["content-length"])
    if len(buf) < pos + n:
        return None
    return Response(status, headers, buf[pos:pos + n]), pos + n


def _decoded(resp: Response) -> bytes:
    enc = resp.headers.get("content-encoding")
    body = resp.body
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    if enc == "lz4":
        return lz4.frame.decompress(body)
    if enc == "zstd":
        return _zstd.decompress(body)
    return body


@dataclass
class Outcome:
    case: Case
    responses: list[Response] = field(default_factory=list)
    end: str = ""  # eof | reset | timeout
    seconds: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    failures: list[str] = field(default_factory=list)
    cut_status: int = 0  # the status of a response too long to read whole

    @property
    def status(self) -> str:
        """The first response's status, or how the connection ended without one."""
        if self.end == "cut":
            return f"{self.cut_status} (cut)"
        return str(self.responses[0].status) if self.responses else f"closed ({self.end})"


# -- the endpoint under test ------------------------------------------------------------------------

class FuzzEndpoint:
    """`swarmlens clickhouse` in a subprocess on 127.0.0.1, a free port and a fresh data directory."""

    def __init__(self, work_dir: Path, max_body: int = MAX_BODY, max_query: int = MAX_QUERY):
        self.work_dir = Path(work_dir)
        self.log_path = self.work_dir / "endpoint.log"
        self.port = free_port()
        self.max_body, self.max_query = max_body, max_query
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def start(self) -> "FuzzEndpoint":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMLENS_")}
        env.update(SWARMLENS_DATA_DIR=str(self.work_dir / "data"), SWARMLENS_CLICKHOUSE_PASSWORD=PASSWORD,
                   SWARMLENS_CLICKHOUSE_MAX_BODY_BYTES=str(self.max_body),
                   SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES=str(self.max_query), SWARMLENS_CLICKHOUSE_POOL_SIZE="4",
                   PYTHONUNBUFFERED="1", TZ="UTC")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "swarmlens.cli", "clickhouse", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--data-dir", str(self.work_dir / "data" / "clickhouse")],
                                     env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(lambda: self.proc.poll() is not None or self._ping(), 120, what="the fuzzed endpoint to answer /ping")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the endpoint exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        self._log_offset = self.log_path.stat().st_size
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0]) * 1024
        return out["VmRSS"], out["VmHWM"]

    def reset_peak(self) -> None:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS

    def new_log(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        self._log_offset += len(data)
        return data.decode("utf-8", "replace")

    def query(self, sql: str, timeout: float = 30.0, body: bytes | None = None) -> Response:
        """One well-formed request and its response (for setup, the health probe and the checksum)."""
        raw = request("POST", _q(sql), body=body or b"") if body is not None else request("GET", _q(sql))
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(raw)
            buf = b""
            while True:
                got = _parse_response(buf, False)
                if got is not None:
                    return got[0]
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise AssertionError(f"connection closed answering {sql!r}")
                buf += chunk

    def command(self, sql: str, body: bytes | None = None) -> bytes:
        r = self.query(sql, body=body if body is not None else b"")
        if r.status != 200:
            raise AssertionError(f"{sql!r} answered {r.status}: {r.body[:500]!r}")
        return r.body


def prepare(ep: FuzzEndpoint) -> tuple[Corpus, str]:
    """Creates the scratch and guard tables, seeds the guard, returns the corpus and the guard's checksum."""
    ep.command(f"CREATE DATABASE IF NOT EXISTS {SCRATCH}")
    ep.command(f"CREATE DATABASE IF NOT EXISTS {GUARD}")
    ep.command(f"CREATE TABLE IF NOT EXISTS {SCRATCH}.t ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    ep.command(f"CREATE TABLE IF NOT EXISTS {GUARD}.seeded ({COLUMNS}) ENGINE = MergeTree ORDER BY id")
    ep.command(f"INSERT INTO {GUARD}.seeded " + SAMPLE_ROWS.replace("numbers(5)", f"numbers({GUARD_ROWS})"))
    encodings = {}
    for fmt in FORMATS:
        encodings[fmt] = ep.command(f"{SAMPLE_ROWS} FORMAT {fmt}")
    return Corpus(encodings), guard_checksum(ep)


def guard_checksum(ep: FuzzEndpoint) -> str:
    return ep.command(f"SELECT count(), groupBitXor(cityHash64(*)), sum(cityHash64(*)) FROM {GUARD}.seeded").decode().strip()


# -- running cases ----------------------------------------------------------------------------------

_LOG_FAILURE = re.compile(r"Traceback|\bERROR\b|Exception (?:occurred|in thread)")
# Documented (docs/embedded-clickhouse.md, Protocol): an insert into a table or database that does not exist
# is retried as the migrations' startup race, then answered by closing the connection, with this line.
_LOG_ALLOWED = re.compile(r"ERROR insert failed \d+ times for a reason of the server's; closing the connection "
                          r"without an answer: (?:Table|Database) \S+ does(?:n't| not) exist")


class Fuzzer:
    def __init__(self, ep: FuzzEndpoint, case_timeout: float = 60.0, quiet_before_close: float = 2.0):
        self.ep = ep
        self.case_timeout = case_timeout
        self.quiet_before_close = quiet_before_close

    def run_case(self, case: Case) -> Outcome:
        out = Outcome(case)
        ep = self.ep
        ep.reset_peak()
        out.rss_before = ep.rss()[0]
        started = time.monotonic()
        sides = [(Case(case.id, case.category, case.kind, [raw], may_drop=True), None) for raw in case.parallel]
        sides = [(c, Outcome(c)) for c, _ in sides]
        threads = [threading.Thread(target=self._guarded, args=side, daemon=True) for side in sides]
        try:
            for t in threads:
                t.start()
            self._guarded(case, out)
            for t in threads:
                t.join(self.case_timeout + 35)
        finally:
            out.seconds = time.monotonic() - started
        for k, (side_case, side_out) in enumerate(sides):
            self._judge(side_case, side_out)
            out.failures += [f"parallel request {k + 1}: {f}" for f in side_out.failures]
        if not ep.alive():
            out.failures.append(f"the endpoint died (exit code {ep.proc.returncode})")
        else:
            out.rss_peak = ep.rss()[1]
            if out.rss_peak - out.rss_before > MEMORY_PER_REQUEST:
                out.failures.append(f"memory rose by {(out.rss_peak - out.rss_before) >> 20} MiB during the case")
        self._judge(case, out)
        log = ep.new_log()
        bad = [line for line in log.splitlines() if _LOG_FAILURE.search(line) and not _LOG_ALLOWED.search(line)]
        if bad:
            out.failures.append("endpoint log: " + " | ".join(bad[:3]) + "\n" + log[-4000:])
        return out

    def _guarded(self, case: Case, out: Outcome) -> None:
        try:
            self._exchange(case, out)
        except OSError as exc:  # refused or broken before any answer: the endpoint is not serving
            out.end = "error"
            out.failures.append(f"connection failed: {type(exc).__name__}: {exc}")

    def _exchange(self, case: Case, out: Outcome) -> None:
        deadline = time.monotonic() + self.case_timeout
        s = socket.create_connection(("127.0.0.1", self.ep.port), timeout=5)
        s.settimeout(0.2)
        buf = b""
        sent_all = True
        try:
            for k, piece in enumerate(case.pieces):
                if k and case.pause:
                    time.sleep(case.pause)  # a slow client, by design of the case
                try:
                    s.sendall(piece)
                except socket.timeout:
                    # the endpoint stopped reading (it answered early): the rest stays unsent
                    s.settimeout(5)
                    try:
                        s.sendall(piece)
                    except OSError:
                        sent_all = False
                        break
                    finally:
                        s.settimeout(0.2)
                except OSError:
                    sent_all = False
                    break
            shut = False
            if case.half_close or not sent_all:
                self._shut(s)
                shut = True
            quiet_since = time.monotonic()
            first_head = case.head
            while True:
                got = _parse_response(buf, first_head and not out.responses)
                if got is not None:
                    resp, used = got
                    buf = buf[used:]
                    if not (100 <= resp.status < 200):
                        out.responses.append(resp)
                        if not shut and resp.headers.get("connection", "").lower() != "close":
                            # answered and kept alive: whatever else we sent is pipelined; say we are done
                            self._shut(s)
                            shut = True
                    continue
                streaming = time.monotonic() - quiet_since < self.quiet_before_close
                if len(buf) > MAX_RESPONSE or (time.monotonic() > deadline and streaming and buf):
                    # A result still flowing is progress, not a hang (a mutation may ask for a billion rows):
                    # the client leaves, and the endpoint must then cancel the query.
                    out.end = "cut"
                    out.cut_status = int(buf[9:12]) if buf[:9] == b"HTTP/1.1 " and buf[9:12].isdigit() else 0
                    s.close()
                    self._check_cancelled(out)
                    return
                if time.monotonic() > deadline:
                    out.end = "timeout"
                    out.failures.append(f"no end after {self.case_timeout:.0f} s (hang)")
                    return
                try:
                    chunk = s.recv(1 << 20)
                except socket.timeout:
                    if not shut and time.monotonic() - quiet_since > self.quiet_before_close:
                        self._shut(s)  # the endpoint waits for bytes we will never send
                        shut = True
                    continue
                except ConnectionResetError:
                    out.end = "reset"
                    break
                if not chunk:
                    out.end = "eof"
                    got = _parse_response(buf, first_head and not out.responses, eof=True)
                    if got is not None and not (100 <= got[0].status < 200):
                        out.responses.append(got[0])
                        buf = buf[got[1]:]
                    break
                quiet_since = time.monotonic()
                buf += chunk
            if buf.strip():
                out.failures.append(f"connection ended inside a response: {buf[:300]!r}")
        finally:
            s.close()

    def _check_cancelled(self, out: Outcome) -> None:
        """After the client left a result unread, the endpoint's running queries must end (it cancels
        a read whose client went away); KILL QUERY ... TEST lists them without touching them."""
        deadline = time.monotonic() + 30
        while True:
            r = self.ep.query("KILL QUERY WHERE 1 TEST FORMAT TSV", body=b"")
            if r.status == 200 and not r.body.strip():
                return
            if time.monotonic() > deadline:
                out.failures.append(f"a query went on 30 s after its client left: {r.status} {r.body[:300]!r}")
                return
            time.sleep(0.2)

    @staticmethod
    def _shut(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _judge(self, case: Case, out: Outcome) -> None:
        if out.end == "cut":
            if not 200 <= out.cut_status < 500:
                out.failures.append(f"a long response with status {out.cut_status}")
            return
        if not out.responses and not case.may_drop and not out.failures:
            out.failures.append(f"closed ({out.end}) without an answer")
        for n, r in enumerate(out.responses):
            code = r.headers.get("x-clickhouse-exception-code")
            if r.status >= 500 and (r.status, int(code or -1)) not in ALLOWED_5XX:
                out.failures.append(f"status {r.status}: {r.body[:400]!r}")
            if n == 0 and case.expect is not None and r.status not in case.expect:
                out.failures.append(f"status {r.status}, expected one of {sorted(case.expect)}: {r.body[:300]!r}")
            if n == 0 and case.codes is not None and r.status >= 400 and int(code or -1) not in case.codes:
                out.failures.append(f"Code {code}, expected one of {sorted(case.codes)}: {r.body[:300]!r}")
            if r.status >= 400 and not case.head and r.status != 499:
                try:
                    body = _decoded(r)
                except Exception as exc:
                    out.failures.append(f"undecodable error body ({r.headers.get('content-encoding')}): {exc}")
                    continue
                m = _ERROR_BODY.match(body)
                if not m:
                    out.failures.append(f"status {r.status} without a ClickHouse error body: {body[:300]!r}")
                elif code != m.group(1).decode():
                    out.failures.append(f"X-ClickHouse-Exception-Code {code} but the body says Code {m.group(1)!r}")
            if r.status == 200 and not case.head and r.body:
                try:
                    body = _decoded(r)
                except Exception as exc:
                    out.failures.append(f"a 200 body that does not decode ({r.headers.get('content-encoding')}): {exc}")
                    body = b""
                if r.headers.get("content-type") == "application/octet-stream" and "compress=1" in \
                        case.pieces[0][:case.pieces[0].find(b" HTTP/")].decode("latin-1"):
                    try:
                        dec = codecs.NativeBlockDecoder()
                        list(dec.feed(body))
                        list(dec.finish())
                    except Exception as exc:
                        out.failures.append(f"compress=1 answered with blocks that do not decode: {exc}")
            tag = r.headers.get("x-clickhouse-exception-tag")
            if r.status == 200 and tag and b"__exception__" in r.body:
                try:
                    body = _decoded(r) if r.headers.get("content-encoding") else r.body
                except Exception:
                    body = r.body
                m = re.search(rb"Code: (\d+)\.", body)
                if m and http_status_for(int(m.group(1))) >= 500 and (http_status_for(int(m.group(1))), int(m.group(1))) not in ALLOWED_5XX:
                    out.failures.append(f"a streamed result ended with a server error: {body[-300:]!r}")

    def health(self) -> str | None:
        """None when `SELECT 1` answers 1; else what went wrong."""
        try:
            r = self.ep.query("SELECT 1", timeout=30)
        except Exception as exc:
            return f"health probe failed: {exc}"
        if r.status != 200 or r.body != b"1\n":
            return f"health probe answered {r.status}: {r.body[:200]!r}"
        return None


def describe(out: Outcome) -> str:
    c = out.case
    return (f"case {c.id} [{c.category}/{c.kind}] {out.status} in {out.seconds:.2f} s: " + "; ".join(out.failures)
            + f"\n  reproduce: generate({c.id.split(':')[0]}, {c.id.split(':')[1]}); first bytes: {c.pieces[0][:200]!r}")

