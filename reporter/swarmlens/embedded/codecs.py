"""Body codecs of the ClickHouse HTTP interface.

Two independent layers, as on a real server:

* HTTP ``Content-Encoding`` / ``Accept-Encoding`` (with ``enable_http_compression=1``):
  gzip, deflate, zstd and lz4 (the LZ4 *frame* format), decoded incrementally.
* ClickHouse's own compressed blocks (``decompress=1`` on requests, ``compress=1`` on
  responses): each block is a CityHash128 checksum (16 bytes), a method byte (0x82 LZ4,
  0x90 ZSTD, 0x02 none), the compressed size counting the 9-byte header (UInt32 LE), the
  decompressed size (UInt32 LE), then the payload.
"""

from __future__ import annotations

import struct
import zlib

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

try:  # the zstd module clickhouse-connect itself uses
    from backports import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.14+ ships compression.zstd
    try:
        from compression import zstd as _zstd  # type: ignore[no-redef]
    except ImportError:
        _zstd = None

from swarmlens.embedded.errors import ClickHouseError

METHOD_NONE = 0x02
METHOD_LZ4 = 0x82
METHOD_ZSTD = 0x90
_HEADER = struct.Struct("<BII")
MAX_BLOCK_BYTES = 1 << 30  # a server refuses larger compressed blocks too

# In order of preference when the client accepts several.
HTTP_ENCODINGS = ["lz4", "zstd", "gzip", "deflate"] if _zstd is not None else ["lz4", "gzip", "deflate"]


def checksum(data: bytes | memoryview) -> bytes:
    h = CityHash128(bytes(data))
    # clickhouse-cityhash returns the two halves in the opposite order to the wire.
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


class _Identity:
    def decompress(self, chunk: bytes) -> bytes:
        return chunk

    def flush(self) -> bytes:
        return b""


class _Zlib:
    def __init__(self, wbits: int):
        self._d = zlib.decompressobj(wbits)

    def decompress(self, chunk: bytes) -> bytes:
        return self._d.decompress(chunk)

    def flush(self) -> bytes:
        out = self._d.flush()
        if not self._d.eof:
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Truncated compressed request body")
        return out


class _Lz4Frame:
    def __init__(self) -> None:
        self._d = lz4.frame.LZ4FrameDecompressor()
        self._frames = 0

    def decompress(self, chunk: bytes) -> bytes:
        out = bytearray()
        while chunk:
            if self._d.eof:  # concatenated frames
                chunk = self._d.unused_data + chunk if self._d.unused_data else chunk
                self._d = lz4.frame.LZ4FrameDecompressor()
            out += self._d.decompress(chunk)
            chunk = self._d.unused_data if self._d.eof else b""
        return bytes(out)

    def flush(self) -> bytes:
        if not self._d.eof and self._d.needs_input is False:
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Truncated LZ4 request body")
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._d = _zstd.ZstdDecompressor()

    def decompress(self, chunk: bytes) -> bytes:
        out = bytearray()
        while chunk:
            if self._d.eof:
                chunk = self._d.unused_data + chunk if self._d.unused_data else chunk
                self._d = _zstd.ZstdDecompressor()
            out += self._d.decompress(chunk)
            chunk = self._d.unused_data if self._d.eof else b""
        return bytes(out)

    def flush(self) -> bytes:
        return b""


def http_decoder(content_encoding: str | None):
    """Returns an incremental decoder for a request's Content-Encoding."""
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity", "none"):
        return _Identity()
    if enc in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if enc == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if enc == "lz4":
        return _Lz4Frame()
    if enc == "zstd" and _zstd is not None:
        return _Zstd()
    raise ClickHouseError(89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown HTTP content encoding '{content_encoding}'")


def choose_http_encoding(accept_encoding: str | None) -> str | None:
    """Picks the response encoding from Accept-Encoding, honouring the client's order."""
    if not accept_encoding:
        return None
    offered = []
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if "q=0" in params.replace(" ", "") and "q=0." not in params.replace(" ", ""):
            continue
        offered.append(name)
    for name in offered:
        if name in HTTP_ENCODINGS:
            return name
        if name == "x-gzip":
            return "gzip"
    return None


def http_encode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return c.compress(data) + c.flush()
    if encoding == "deflate":
        return zlib.compress(data, 1)
    if encoding == "lz4":
        return lz4.frame.compress(data)
    if encoding == "zstd":
        return _zstd.compress(data)
    raise ValueError(encoding)


class NativeBlockDecoder:
    """Incremental decoder of ClickHouse compressed blocks (``decompress=1``)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def decompress(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out = bytearray()
        while len(self._buf) >= 25:
            method, csize, dsize = _HEADER.unpack_from(self._buf, 16)
            if csize < 9 or csize > MAX_BLOCK_BYTES or dsize > MAX_BLOCK_BYTES:
                raise ClickHouseError(246, "TOO_LARGE_SIZE_COMPRESSED",
                                      f"Too large size_compressed_without_checksum: {csize}. Most likely corrupted data.")
            end = 16 + csize
            if len(self._buf) < end:
                break
            block = memoryview(self._buf)[16:end]
            if checksum(block) != bytes(self._buf[:16]):
                raise ClickHouseError(40, "CHECKSUM_DOESNT_MATCH",
                                      "Checksum doesn't match: corrupted data. Reference: compressed block checksum.")
            payload = bytes(block[9:])
            del block
            try:
                if method == METHOD_LZ4:
                    data = lz4.block.decompress(payload, uncompressed_size=dsize)
                elif method == METHOD_ZSTD and _zstd is not None:
                    data = _zstd.decompress(payload)
                elif method == METHOD_NONE:
                    data = payload
                else:
                    raise ClickHouseError(89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method: {method:#x}")
            except ClickHouseError:
                raise
            except Exception as exc:
                raise ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress block: {exc}") from None
            if len(data) != dsize:
                raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Decompressed size does not match the block header")
            out += data
            del self._buf[:end]
        return bytes(out)

    def flush(self) -> bytes:
        if self._buf:
            raise ClickHouseError(33, "CANNOT_READ_ALL_DATA",
                                  f"Cannot read all data: {len(self._buf)} bytes of an incomplete compressed block")
        return b""


def native_block_encode(data: bytes, block_size: int = 1 << 20) -> bytes:
    """Encodes a response body as ClickHouse LZ4 compressed blocks (``compress=1``)."""
    out = bytearray()
    for start in range(0, len(data), block_size):
        raw = data[start:start + block_size]
        comp = lz4.block.compress(raw, store_size=False)
        body = _HEADER.pack(METHOD_LZ4, len(comp) + 9, len(raw)) + comp
        out += checksum(body) + body
    return bytes(out)
