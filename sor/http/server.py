"""The HTTP/1.1 plumbing of sor's servers (``sor.emulator``): bounded body reads, whole answers,
chunked bodies read piece by piece and streamed answers sent chunk by chunk.

Request bodies come with ``Content-Length`` or chunked; one over the caller's limit is read and
dropped (up to ``_MAX_DRAIN``, past which the connection is closed instead), so that its sender
can read the refusal; one that is malformed gets a 400 and the connection is closed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sor.http.chunked import BadChunk, ChunkedReader, TooLarge, encode_chunk, encode_last

# Callers beyond what runs wait in the kernel's listen queue until accepted: socketserver's
# default of 5 drops (or resets) the rest of a burst; the kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = 1024
_CHUNK = 1 << 16
_MAX_DRAIN = 64 << 20  # an oversized body up to this is read and dropped, a larger one hung up on
_DIGITS = re.compile(r"[0-9]{1,18}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field names


class Server(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server of sor's: a thread per connection, a deep listen queue (a burst
    of callers waits to be accepted instead of being refused), and quiet about peers that hang
    up (a bootstrap killed mid-request is the emulator's daily life, not an error to print)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


class _BadBody(Exception):
    """A request body that is not framed as HTTP/1.1 frames bodies."""


class RequestHandler(BaseHTTPRequestHandler):
    """Shared plumbing: keep-alive, bounded body reads, whole responses."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "sor"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the function's own logs

    def read_body(self, limit: int) -> bytes | int | None:
        """The request body; its size when over ``limit`` (it is dropped); None when it was
        malformed (a 400 has been sent and the connection will close)."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked(limit)
            raw = (self.headers.get("Content-Length") or "0").strip()
            if _DIGITS.fullmatch(raw) is None:
                raise _BadBody(f"Content-Length {raw[:40]!r} is not a size")
            length = int(raw)
            if length <= limit:
                return self._read_exactly(length)
            self._discard(length)
            return length
        except _BadBody as exc:
            self.bad_request(str(exc))
            return None

    def _read_exactly(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise _BadBody(f"the body ended after {len(data)} of {n} bytes")
        return data

    def _discard(self, n: int) -> None:
        """Drop ``n`` bytes of an oversized body, so the client can read the refusal; past
        ``_MAX_DRAIN`` the connection is closed instead of reading on."""
        if n > _MAX_DRAIN:
            self.close_connection = True
            return
        while n > 0:
            chunk = self.rfile.read(min(n, _CHUNK))
            if not chunk:
                raise _BadBody("the body ended early")
            n -= len(chunk)

    def _read_chunked(self, limit: int) -> bytes | int:
        parts: list[bytes] = []
        size = 0
        try:
            for piece in ChunkedReader(self.rfile).pieces(limit + _MAX_DRAIN):
                size += len(piece)
                if size <= limit:
                    parts.append(piece)
                else:
                    parts.clear()
        except TooLarge as exc:
            self.close_connection = True  # never read an unbounded body
            return exc.size
        except BadChunk as exc:
            raise _BadBody(str(exc)) from None
        return b"".join(parts) if size <= limit else size

    def chunked_body(self) -> ChunkedReader | None:
        """The request's chunked body, to be read piece by piece (None when not chunked)."""
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return None
        return ChunkedReader(self.rfile)

    def bad_request(self, message: str) -> None:
        """400 for a body that is not framed as HTTP frames bodies; the connection closes."""
        self.close_connection = True
        self.answer_json(400, {"errorType": "BadRequest", "errorMessage": message})

    def start_stream(
        self,
        status: int,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        trailers: Sequence[str] = (),
    ) -> bool:
        """Send the head of a chunked response (``trailers``: the names it may end with);
        False when the connection broke. A header value HTTP cannot carry raises ValueError
        before anything is sent."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        _check_headers(pairs)
        try:
            self.send_response(status)
            for key, value in pairs:
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            if trailers:
                self.send_header("Trailer", ", ".join(trailers))
            self.end_headers()
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return False
        return True

    def send_piece(self, data: bytes) -> bool:
        """One chunk of a streamed response, sent now; False when the caller has gone."""
        try:
            self.wfile.write(encode_chunk(data))
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return False
        return True

    def end_stream(self, trailers: Mapping[str, str] | None = None) -> bool:
        """End a streamed response, with ``trailers``; False when the caller has gone."""
        try:
            self.wfile.write(encode_last(trailers))
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return False
        return True

    def answer(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    ) -> bool:
        """Send a whole response; False when the connection broke.

        Any other failure (e.g. a header value that cannot be sent) sends nothing, closes the
        connection and is raised, for the caller to settle what the response was for.
        """
        given = headers or ()
        pairs = list(given.items()) if isinstance(given, Mapping) else list(given)
        try:
            _check_headers(pairs)
            self.send_response(status)
            for key, value in pairs:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
            return False
        except Exception:
            self.close_connection = True
            raise
        return True

    def answer_json(self, status: int, value: object) -> None:
        self.answer(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def not_found(self) -> None:
        self.answer_json(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})


def _check_headers(pairs: Sequence[tuple[str, str]]) -> None:
    """ValueError for a header HTTP cannot carry, before any byte of the head is written: a
    name that is not a token (a function's CR/LF would forge headers) or a value with control or
    non-ASCII characters."""
    for key, value in pairs:
        if not _TOKEN.fullmatch(key):
            raise ValueError(f"header name {key[:40]!r} is not an HTTP token")
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"header {key} holds characters HTTP cannot carry")
