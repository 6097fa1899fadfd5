"""A streamed answer on its way from the runtime's POST to the caller who waits for it.

The thread that reads the runtime's chunked POST ``put``s each piece; the caller's thread takes
them with ``next_piece`` as they come. At most ``room`` pieces wait between the two, so a slow
caller slows the runtime's upload (TCP pushes back) and memory stays bounded whatever the stream's
size. A caller that has gone ``abandon``s the stream: the rest is read and dropped, so the runtime
is still answered as Lambda answers it.
"""

from __future__ import annotations

import collections
import threading
import time

ROOM = 16  # pieces of at most 64 KiB (sor.http.chunked.PIECE): 1 MiB at most in between


class StreamError:
    """How a stream ended in error: Lambda's errorType and the ERROR JSON (the trailers' values)."""

    __slots__ = ("body", "error_type")

    def __init__(self, error_type: str, body: bytes) -> None:
        self.error_type = error_type
        self.body = body


class ChunkStream:
    """The pieces of one streamed answer, passed on as they arrive (see the module docstring)."""

    def __init__(self, content_type: str, room: int = ROOM) -> None:
        self.content_type = content_type
        self._room = room
        self._cv = threading.Condition()
        self._pieces: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._abandoned = False
        self.error: StreamError | None = None

    def put(self, data: bytes, deadline: float) -> bool:
        """Pass ``data`` on, waiting for room until ``deadline`` (TimeoutError past it); False
        when the caller has gone (``data`` is dropped)."""
        with self._cv:
            while len(self._pieces) >= self._room and not self._abandoned:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the caller did not take the stream in time")
                self._cv.wait(left)
            if self._abandoned:
                return False
            self._pieces.append(data)
            self._cv.notify_all()
            return True

    def end(self, error: StreamError | None = None) -> None:
        """The stream is over (with ``error`` when it ended in error); only the first end counts."""
        with self._cv:
            if not self._ended:
                self._ended, self.error = True, error
                self._cv.notify_all()

    def abandon(self) -> None:
        """The caller has gone: what is waiting and what comes is dropped."""
        with self._cv:
            self._abandoned = True
            self._pieces.clear()
            self._cv.notify_all()

    def next_piece(self) -> bytes | None:
        """The next piece, waiting for it; None once the stream has ended (see ``error``).
        The writer always ends the stream (its deadline included), so this never waits forever."""
        with self._cv:
            while not self._pieces and not self._ended:
                self._cv.wait()
            if self._pieces:
                data = self._pieces.popleft()
                self._cv.notify_all()
                return data
            return None

    def wait_end(self) -> StreamError | None:
        """Wait until the writer has ended the stream (it always does); how it ended."""
        with self._cv:
            while not self._ended:
                self._cv.wait()
            return self.error
