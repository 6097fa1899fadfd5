"""HTTP/1.1 chunked transfer coding, read piece by piece (RFC 9112 section 7.1).

``ChunkedReader`` reads a chunked body from a buffered binary file (a server's request body, a
client's response body) as pieces of at most ``piece`` bytes, whatever size the sender's chunks
have, so that a body is never held whole; the trailer fields are kept once the last chunk is read.
``encode_chunk`` and ``encode_last`` are the sending side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Protocol

PIECE = 1 << 16
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_MAX_TRAILERS = 100
_MAX_LINE = 8192


class BadChunk(ValueError):
    """A body that is not framed as HTTP/1.1 frames chunked bodies (or that ended early)."""


class TooLarge(Exception):
    """The chunks announced so far add up to more than the reader's limit (``size``); the chunk
    that passed it was not read."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes announced")
        self.size = size


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...
    def read(self, size: int = -1, /) -> bytes: ...


class ChunkedReader:
    """One chunked body: iterate ``pieces()``, then read ``trailers`` (names lower-cased)."""

    def __init__(self, rfile: _Readable, piece: int = PIECE) -> None:
        self._rfile = rfile
        self._piece = piece
        self.trailers: dict[str, str] = {}
        self.done = False

    def pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """The body's bytes, in pieces of at most ``piece`` bytes; BadChunk when malformed,
        TooLarge before reading a chunk that takes the body over ``limit`` bytes."""
        announced = 0
        while True:
            line = self._rfile.readline(1024)
            field = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or _HEX.fullmatch(field) is None:
                raise BadChunk(f"malformed chunk size {line[:40]!r}")
            left = int(field, 16)
            announced += left
            if limit is not None and announced > limit:
                raise TooLarge(announced)
            if left == 0:
                self._read_trailers()
                self.done = True
                return
            while left > 0:
                data = self._rfile.read(min(left, self._piece))
                if not data:
                    raise BadChunk("the body ended inside a chunk")
                left -= len(data)
                yield data
            if self._rfile.readline(16) not in (b"\r\n", b"\n"):
                raise BadChunk("a chunk does not end with CRLF")

    def _read_trailers(self) -> None:
        for _ in range(_MAX_TRAILERS):
            line = self._rfile.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                raise BadChunk("the trailer section ended early or has a line too long")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep and name.strip():
                self.trailers[name.strip().lower()] = value.strip()
        raise BadChunk("too many trailers")


def encode_chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def encode_last(trailers: Mapping[str, str] | None = None) -> bytes:
    """The last chunk and the trailer fields, which end a chunked body."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in (trailers or {}).items())
    return b"0\r\n" + lines.encode("latin-1") + b"\r\n"
