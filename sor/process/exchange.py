"""A bounded exchange with a short-lived child: feed its stdin, collect its stdout, stream its
stderr lines, and never hang, whatever the child (or a grandchild it leaves behind) does.

Exec-mode middleware hooks and the layer builder's pip run through here; the children are
started by ``sor.process.spawn``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence

from sor.process.pipes import (
    CHUNK,
    READ_SIZE,
    STDERR_TAIL_LINES,
    LogLines,
    make_pipe,
    wait_fds,
)
from sor.process.spawn import Child, spawn
from sor.values import frozen

# Once the child has exited (and its group is killed), output already written is read at once;
# this only bounds the wait for end-of-file from a writer that escaped the group.
_EOF_WAIT_AFTER_EXIT = 0.05
_PIPE_DEFAULT = 1 << 16  # the kernel's own pipe size: enlarging it costs a system call


@frozen
class Completed:
    """What a bounded run of a short-lived child produced."""

    returncode: int | None  # None when it was killed for running out of time or output
    stdout: bytes
    stderr_tail: tuple[str, ...]
    timed_out: bool
    overflow: bool


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    input: bytes,
    timeout: float,
    max_output: int,
    on_stderr_line: Callable[[str], None] | None = None,
    cwd: str | None = None,
) -> Completed:
    """Run a short-lived child: feed ``input``, collect stdout, stream stderr lines, never hang.

    The child's whole process group is killed when it times out, when its stdout passes
    ``max_output`` bytes, and once it has exited (so a grandchild holding a pipe cannot stall us).
    Raises OSError naming the command when it cannot be started.
    """
    deadline = time.monotonic() + timeout
    # Only pipes that may carry more than the kernel's default are enlarged: stdin for a large
    # input, stdout always (an answer of megabytes); stderr is read line by line as it comes.
    in_r, in_w = make_pipe() if len(input) > _PIPE_DEFAULT else os.pipe2(os.O_CLOEXEC)
    out_r, out_w = make_pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        child = spawn(argv, env=env, stdin=in_r, stdout=out_w, stderr=err_w, cwd=cwd)
    except OSError:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    return _Exchange(child, in_w, out_r, err_r, input, max_output, on_stderr_line).run(deadline)


class _Exchange:
    """The select loop behind ``run``: one child, three pipes, one deadline."""

    def __init__(
        self,
        child: Child,
        in_w: int,
        out_r: int,
        err_r: int,
        data: bytes,
        max_output: int,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self.child = child
        self.pending = memoryview(data)
        self.fds = {"in": in_w, "out": out_r, "err": err_r}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.out = bytearray()
        self.err = LogLines()
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.max_output = max_output
        self.on_line = on_line
        self.overflow = False
        # Whether to ask if the child exited: always without a pidfd; with one, once it is
        # readable (it is the moment of exit), which saves a waitid per wake-up.
        self.exit_seen = child.pidfd is None

    def run(self, deadline: float) -> Completed:
        timed_out = False
        group_killed = False
        try:
            self._feed()  # the pipe is empty: most inputs fit at once, with no wait before
            exited_at: float | None = None
            while True:
                now = time.monotonic()
                # at the deadline it is asked once more: an exit just before it is not a timeout
                asks = self.exit_seen or now >= deadline
                if exited_at is None and asks and self.child.exited():
                    exited_at = now
                    self.child.kill_group()  # leftovers of a finished hook must not linger
                    group_killed = True
                    self._close("in")
                    self._drain()  # everything already written, however late we look
                if exited_at is not None and not ("out" in self.fds or "err" in self.fds):
                    break
                limit = deadline
                if exited_at is not None:
                    limit = min(deadline, exited_at + _EOF_WAIT_AFTER_EXIT)
                if now >= limit:
                    timed_out = exited_at is None
                    break
                self._step(limit - now, watch_exit=exited_at is None)
                if self.overflow:
                    break
        finally:
            if not group_killed:  # once is enough: Child.close kills it again anyway
                self.child.kill_group()
            for name in list(self.fds):
                self._close(name)
            self.child.close()
        self._emit(self.err.end())
        killed = timed_out or self.overflow
        return Completed(
            returncode=None if killed else self.child.returncode,
            stdout=bytes(self.out),
            stderr_tail=tuple(self.tail),
            timed_out=timed_out,
            overflow=self.overflow,
        )

    def _step(self, left: float, watch_exit: bool) -> None:
        readers = [self.fds[n] for n in ("out", "err") if n in self.fds]
        writers = [self.fds["in"]] if "in" in self.fds else []
        if self.child.pidfd is None:
            left = min(left, 0.01)  # no pidfd: look at the process again soon
        elif watch_exit:
            readers.append(self.child.pidfd)
        ready_r, ready_w = wait_fds(readers, writers, left)
        if self.child.pidfd in ready_r:
            self.exit_seen = True
        if ready_w:
            self._feed()
        for name in ("out", "err"):
            if name in self.fds and self.fds[name] in ready_r:
                self._take(name)

    def _drain(self) -> None:
        """Read both pipes until they are empty (or closed) without waiting."""
        for name in ("out", "err"):
            while name in self.fds and self._take(name) and not self.overflow:
                pass

    def _feed(self) -> None:
        try:
            self.pending = self.pending[os.write(self.fds["in"], self.pending[:CHUNK]) :]
        except BlockingIOError:
            return
        except BrokenPipeError:
            self.pending = memoryview(b"")  # the child does not want its input: that is its call
        if not self.pending:
            self._close("in")

    def _take(self, name: str) -> bool:
        """Read once from a pipe; False when there was nothing to read or it closed."""
        try:
            chunk = os.read(self.fds[name], READ_SIZE)
        except BlockingIOError:
            return False
        if not chunk:
            self._close(name)
            return False
        if name == "out":
            self.out += chunk
            self.overflow = len(self.out) > self.max_output
        else:
            self._emit(self.err.feed(chunk))
        return True

    def _emit(self, lines: list[str]) -> None:
        for line in lines:
            self.tail.append(line)
            if self.on_line is not None:
                with contextlib.suppress(Exception):  # a broken log must not fail the child
                    self.on_line(line)

    def _close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)
