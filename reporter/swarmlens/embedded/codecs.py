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
MAX_BLOCK_BYTES = 64 << 20  # a server allows 1 GiB; clients send about 1 MiB, and the endpoint bounds memory

# In order of preference when the client accepts several.
HTTP_ENCODINGS = ["lz4", "zstd", "gzip", "deflate"] if _zstd is not None else ["lz4", "gzip", "deflate"]


def checksum(data: bytes | memoryview) -> bytes:
    h = CityHash128(bytes(data))
    # clickhouse-cityhash returns the two halves in the opposite order to the wire.
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


# Decoders hand out their output in pieces of at most this size, so a small body that inflates
# to gigabytes (a compression bomb) never sits in memory whole: the body limit stops it while
# it streams.
PIECE = 4 << 20


class _Identity:
    def feed(self, chunk: bytes):
        if chunk:
            yield chunk

    def finish(self):
        return iter(())


class _Zlib:
    def __init__(self, wbits: int):
        self._wbits = wbits
        self._d = zlib.decompressobj(wbits)

    def feed(self, chunk: bytes):
        data = chunk
        while data:
            if self._d.eof:  # gzip allows concatenated members
                self._d = zlib.decompressobj(self._wbits)
            out = self._d.decompress(data, PIECE)
            if out:
                yield out
            data = self._d.unconsumed_tail or (self._d.unused_data if self._d.eof else b"")

    def finish(self):
        if not self._d.eof:
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Truncated compressed request body")
        return iter(())


class _Stepwise:
    """lz4 frames and zstd: decompressors that take max_length and say when they need input."""

    def __init__(self, make):
        self._make = make
        self._d = make()

    def feed(self, chunk: bytes):
        data = chunk
        while True:
            if self._d.eof:  # concatenated frames
                if not data:
                    return
                self._d = self._make()
            out = self._d.decompress(data, PIECE)
            data = b""
            if out:
                yield out
            if self._d.eof:
                data = self._d.unused_data or b""
                continue
            if self._d.needs_input:
                return

    def finish(self):
        if not self._d.eof:
            raise ClickHouseError(271, "CANNOT_DECOMPRESS", "Truncated compressed request body")
        return iter(())


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
        return _Stepwise(lz4.frame.LZ4FrameDecompressor)
    if enc == "zstd" and _zstd is not None:
        return _Stepwise(_zstd.ZstdDecompressor)
    raise ClickHouseError(89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown HTTP content encoding '{content_encoding}'")


def choose_http_encoding(accept_encoding: str | None) -> str | None:
    """Picks the response encoding from Accept-Encoding: the highest q-value wins, the client's order
    breaks ties, and q=0 (in any spelling: 0, 0.0, 0.000) refuses an encoding."""
    if not accept_encoding:
        return None
    offered = []
    for pos, part in enumerate(accept_encoding.split(",")):
        name, *params = [p.strip() for p in part.split(";")]
        name = name.lower()
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        name = "gzip" if name == "x-gzip" else name
        if name in HTTP_ENCODINGS:
            offered.append((-q, pos, name))
    return min(offered)[2] if offered else None


class HttpEncoder:
    """Streaming response compression: each chunk leaves compressed as it is produced."""

    def __init__(self, encoding: str, level: int | None = None):
        self.encoding = encoding
        if encoding == "gzip":
            self._c = zlib.compressobj(level if level is not None else 3, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._c = zlib.compressobj(level if level is not None else 3)
        elif encoding == "lz4":
            self._c = lz4.frame.LZ4FrameCompressor()
            self._started = False
        elif encoding == "zstd":
            self._c = _zstd.ZstdCompressor()
        else:
            raise ValueError(encoding)

    def compress(self, data: bytes) -> bytes:
        if self.encoding in ("gzip", "deflate"):
            return self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)
        if self.encoding == "lz4":
            head = b""
            if not self._started:
                head, self._started = self._c.begin(), True
            return head + self._c.compress(data)
        return self._c.compress(data) + self._c.flush(_zstd.ZstdCompressor.FLUSH_BLOCK)

    def finish(self) -> bytes:
        if self.encoding in ("gzip", "deflate"):
            return self._c.flush()
        if self.encoding == "lz4":
            head = b""
            if not self._started:
                head, self._started = self._c.begin(), True
            return head + self._c.flush()
        return self._c.flush()


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

    def feed(self, chunk: bytes):
        self._buf += chunk
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
                    d = _zstd.ZstdDecompressor()
                    data = d.decompress(payload, dsize + 1)
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
            del self._buf[:end]
            yield data

    def finish(self):
        if self._buf:
            raise ClickHouseError(33, "CANNOT_READ_ALL_DATA",
                                  f"Cannot read all data: {len(self._buf)} bytes of an incomplete compressed block")
        return iter(())


def native_block_encode(data: bytes, block_size: int = 1 << 20) -> bytes:
    """Encodes a response body as ClickHouse LZ4 compressed blocks (``compress=1``)."""
    out = bytearray()
    for start in range(0, len(data), block_size):
        raw = data[start:start + block_size]
        comp = lz4.block.compress(raw, store_size=False)
        body = _HEADER.pack(METHOD_LZ4, len(comp) + 9, len(raw)) + comp
        out += checksum(body) + body
    return bytes(out)
