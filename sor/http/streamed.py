"""One HTTP(S) request whose response is read as it arrives, trailers included (`sor invoke`).

``http.client`` (and ``requests`` over it) read a chunked response but drop its trailer fields;
the invoke endpoint of `sor local serve` says in them that a streamed answer ended in error. So
the head is read by ``http.client`` and a chunked body by ``sor.http.chunked``. Client side only:
never imported by `sor run`.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from sor.http.chunked import PIECE, BadChunk, ChunkedReader


class BrokenOff(Exception):
    """The response ended before its end (a connection closed, a malformed chunk)."""


class StreamedResponse:
    """Status, headers (names lower-cased), the body's pieces as they come, then ``trailers``."""

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self._connection = connection
        self._response = connection.getresponse()
        self.status = self._response.status
        self.headers = {k.lower(): v for k, v in self._response.getheaders()}
        self.trailers: dict[str, str] = {}

    def pieces(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives; BrokenOff when it ends early."""
        response = self._response
        try:
            if response.chunked:
                # The body is read from the response's own buffered file: http.client has read
                # the head from it and nothing more.
                reader = ChunkedReader(response.fp, PIECE)
                yield from reader.pieces()
                self.trailers = reader.trailers
                return
            while piece := response.read1(PIECE):
                yield piece
        except (BadChunk, OSError, http.client.HTTPException) as exc:
            raise BrokenOff(str(exc) or type(exc).__name__) from None

    def close(self) -> None:
        self._connection.close()


def post(
    url: str, body: bytes, headers: Mapping[str, str], connect_timeout: float
) -> StreamedResponse:
    """POST ``body`` to ``url`` (http or https); the response once its head has come. OSError
    or http.client.HTTPException when the server cannot be reached or answers no HTTP."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=connect_timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        connection.sock.settimeout(None)  # the answer may take as long as the function does
        connection.request("POST", target, body=body, headers=dict(headers))
        return StreamedResponse(connection)
    except BaseException:
        connection.close()
        raise
