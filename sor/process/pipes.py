"""Talking to children over pipes, always within a deadline.

Pipes are made here (close-on-exec, enlarged), waited on with poll() (select() fails on
descriptors past 1024), written without blocking past a deadline, read line by line with a bound
on line length, and a long-lived child's stderr is pumped to the logs by a thread that can always
be stopped. Children themselves are started by ``sor.process``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import math
import os
import select
import threading
import time
from collections.abc import Callable, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.process.spawn import Child

PIPE_SIZE = 1 << 20  # large pipes make multi-megabyte payloads cheap to pass
_F_SETPIPE_SZ = 1031
CHUNK = 1 << 20  # one write on a pipe
READ_SIZE = 1 << 16  # one read: larger reads cost an mmap/munmap each (docs/performance.md)
STDERR_TAIL_LINES = 20
MAX_TAIL_LINE = 8192  # characters of a line kept in the tail (error messages quote it)
# A log record is one line (runtimes/PROTOCOL.md): cut only past CloudWatch's largest event.
MAX_LOG_LINE = 256 * 1024


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe (read end, write end), enlarged where the kernel allows."""
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # past the kernel's limit the default size still works
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


def wait_fds(
    readers: Sequence[int], writers: Sequence[int], timeout: float | None
) -> tuple[set[int], set[int]]:
    """Block until a descriptor is ready or ``timeout`` (seconds) passes: (readable, writable).

    poll() rather than select(): select() fails on descriptor numbers past 1024.
    """
    poller = select.poll()
    for fd in readers:
        poller.register(fd, select.POLLIN)
    for fd in writers:
        poller.register(fd, select.POLLOUT)
    ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
    readable, writable = set(), set()
    for fd, events in poller.poll(ms):
        # A closed peer (POLLHUP/POLLERR) counts as ready: the next read or write says so.
        if events & ~select.POLLOUT:
            readable.add(fd)
        if events & (select.POLLOUT | select.POLLERR | select.POLLHUP):
            writable.add(fd)
    return readable & set(readers), writable & set(writers)


def write_all(fd: int, data: bytes, child: Child, deadline: float) -> bool:
    """Write ``data`` to a non-blocking pipe before ``deadline``; False if the reader is gone."""
    os.set_blocking(fd, False)
    sent = 0
    if len(data) <= CHUNK:  # the usual message: one write, no view, takes it whole
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            pass  # the pipe is full: wait below as for any other write
        except BrokenPipeError:
            return False
        if sent == len(data):
            return True
    view = memoryview(data)[sent:]
    while view:
        try:
            view = view[os.write(fd, view[:CHUNK]) :]
            continue
        except BlockingIOError:
            pass
        except BrokenPipeError:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        watch = [child.pidfd] if child.pidfd is not None else []
        _, writable = wait_fds(watch, [fd], min(left, 0.01 if not watch else left))
        if not writable and child.exited():
            return False
    return True


class LineReader:
    """Reads newline-terminated messages from a child's pipe, with deadlines."""

    def __init__(self, fd: int, child: Child, max_line: int) -> None:
        self.fd = fd
        self.child = child
        self.max_line = max_line
        self._buf = bytearray()
        self._chunk: memoryview | None = None
        # The pipe and the child's pidfd, registered once: every answer is waited for.
        self._poller: select.poll | None = None
        os.set_blocking(fd, False)

    def readline(self, deadline: float | None) -> bytes:
        """The next line without its newline.

        Raises TimeoutError past ``deadline``, EOFError when the child died or closed the pipe,
        ValueError when a line exceeds ``max_line`` bytes.
        """
        scanned = 0
        while True:
            nl = self._buf.find(b"\n", scanned)
            if nl >= 0:
                with memoryview(self._buf) as view:  # one copy of the line, not two
                    line = bytes(view[:nl])
                del self._buf[: nl + 1]
                return line
            scanned = len(self._buf)
            if scanned > self.max_line:
                self._buf.clear()
                raise ValueError(f"a message longer than {self.max_line} bytes")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            if self._wait(left):
                if not self._read():
                    raise EOFError
            elif self.child.exited() and not self._drain():
                raise EOFError

    def _wait(self, timeout: float | None) -> bool:
        """`Child.wait_readable` of the pipe, with a poller made once (when there is a pidfd)."""
        if self.child.pidfd is None:
            return bool(self.child.wait_readable([self.fd], timeout))
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.fd, select.POLLIN)
            self._poller.register(self.child.pidfd, select.POLLIN)
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        # A closed peer (POLLHUP/POLLERR) counts as readable: the next read says so.
        return any(fd == self.fd for fd, _ in self._poller.poll(ms))

    def pending(self) -> bool:
        """True when the child wrote more than the lines read so far (e.g. an unasked answer)."""
        if self._buf:
            return True
        return bool(wait_fds([self.fd], [], 0)[0])

    def _read(self) -> bool:
        # Into a small reused buffer: os.read(fd, CHUNK) mmaps, mremaps and munmaps 1 MB per
        # call (~35 us of CPU per language runtime answer); big messages just take more reads.
        if self._chunk is None:
            self._chunk = memoryview(bytearray(READ_SIZE))
        try:
            n = os.readv(self.fd, [self._chunk])
        except BlockingIOError:
            return True
        self._buf += self._chunk[:n]
        return n > 0

    def _drain(self) -> bool:
        """After the child's exit: take what is left in the pipe; False when nothing was."""
        before = len(self._buf)
        while self._read() and len(self._buf) > before:
            before = len(self._buf)
        return b"\n" in self._buf


class LogLines:
    """Cuts a child's stderr into log lines: at most MAX_LOG_LINE bytes each, memory bounded.

    A longer line is forwarded in MAX_LOG_LINE pieces, so a child that never writes a newline
    is still logged (and cannot exhaust memory).
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        """The complete lines that ``data`` ends."""
        self._pending += data
        out: list[str] = []
        while True:
            nl = self._pending.find(b"\n", 0, MAX_LOG_LINE)
            if nl < 0 and len(self._pending) < MAX_LOG_LINE:
                return out
            cut = nl + 1 if nl >= 0 else MAX_LOG_LINE
            out.append(_decode(self._pending[:cut]))
            del self._pending[:cut]

    def end(self) -> list[str]:
        """The last, unterminated line, once the stream has ended."""
        rest, self._pending = self._pending, bytearray()
        return [_decode(rest)] if rest else []


def _decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", "replace").rstrip("\r\n")


class LogPump(threading.Thread):
    """Forwards a long-lived child's stderr line by line, keeping the last lines for errors.

    ``finish`` always ends it, even when a grandchild that left the process group (setsid)
    still holds the pipe open: the thread waits on the pipe and on a stop pipe of its own.
    Lines are cut at MAX_LOG_LINE bytes, so a child that never writes a newline cannot exhaust
    memory, and a failing ``emit`` never stops the draining (or the child would block).
    """

    def __init__(self, fd: int, emit: Callable[[str], None]) -> None:
        super().__init__(daemon=True, name=f"sor-log-{fd}")
        self.fd = fd
        self.emit = emit
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        # Held while a chunk is read and forwarded, and while ``fd`` is closed: ``flush`` sees
        # either bytes still in the pipe, a chunk in hand, or everything forwarded.
        self._turn = threading.Condition()
        self._busy = False
        self._closed = False

    def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the whole lines already written to the pipe have been
        forwarded: what a child logged before it answered is logged before its answer is used."""
        import termios  # only callers that need the order pay for it

        size = bytearray(4)
        # Without the lock first (it runs after every answer of a persistent middleware): an
        # empty pipe while the pump holds no chunk, both before and after, means every line
        # written was forwarded, since the pump is busy from before it reads until it forwarded.
        if not self._busy and not self._closed:
            try:
                fcntl.ioctl(self.fd, termios.FIONREAD, size)
            except OSError:
                pass  # closed meanwhile: the lock and the pump's own state say so below
            else:
                if int.from_bytes(size, "little") == 0 and not self._busy:
                    return

        def drained() -> bool:
            if self._closed or not self.is_alive():
                return True
            if self._busy:
                return False
            fcntl.ioctl(self.fd, termios.FIONREAD, size)
            return int.from_bytes(size, "little") == 0

        with self._turn:
            self._turn.wait_for(drained, timeout)

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the last lines (end of file), then stop reading regardless."""
        self.join(timeout)
        if self.is_alive():
            os.write(self._stop_w, b"x")
            self.join(timeout)  # it wakes at once: only a stuck `emit` could hold it
        if not self.is_alive() and self._stop_r >= 0:
            for fd in (self._stop_r, self._stop_w):
                os.close(fd)
            self._stop_r = self._stop_w = -1

    def run(self) -> None:
        lines = LogLines()
        # One poller for the thread's life: it wakes for every line a busy child logs.
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while True:
                if any(fd == self._stop_r for fd, _ in poller.poll()):
                    self._drain(lines)
                    break
                with self._turn:
                    self._busy = True
                try:
                    data = os.read(self.fd, READ_SIZE)
                    for line in lines.feed(data):
                        self._forward(line)
                finally:
                    with self._turn:
                        self._busy = False
                        self._turn.notify_all()
                if not data:
                    break
            for line in lines.end():
                self._forward(line)
        finally:
            with self._turn:
                self._closed = True
                os.close(self.fd)
                self._turn.notify_all()

    def _drain(self, lines: LogLines) -> None:
        """Once told to stop: what the pipe already holds (a killed child's last lines), at
        most one pipe's worth, so a grandchild that goes on writing cannot keep the thread."""
        os.set_blocking(self.fd, False)
        left = PIPE_SIZE
        while left > 0:
            try:
                data = os.read(self.fd, min(READ_SIZE, left))
            except BlockingIOError:
                return
            if not data:
                return
            left -= len(data)
            for line in lines.feed(data):
                self._forward(line)

    def _forward(self, line: str) -> None:
        self.tail.append(line[:MAX_TAIL_LINE])
        with contextlib.suppress(Exception):  # a broken log must not stop the draining
            self.emit(line)
