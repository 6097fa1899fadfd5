"""Every child process of sor starts and is talked to here.

Children are started with ``posix_spawn`` (cheap, and able to place pipes on exact descriptor
numbers such as the protocol's fd 3 and 4) in a process group of their own, so that killing a
child also kills whatever it started. All IO with children is bounded by a deadline: nothing here
can block forever on a child that hangs, dies, or leaves a grandchild holding a pipe open.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

PIPE_SIZE = 1 << 20  # large pipes make multi-megabyte payloads cheap to pass
_F_SETPIPE_SZ = 1031
_CHUNK = 1 << 16
_DRAIN_AFTER_EXIT = 0.05  # how long output is still read once a child has exited
STDERR_TAIL_LINES = 20
_MAX_LOG_LINE = 8192


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe (read end, write end), enlarged where the kernel allows."""
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # past the kernel's limit the default size still works
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


def resolve_executable(command: str, env: Mapping[str, str]) -> str:
    """The path that would be executed for ``command``; OSError naming it when there is none."""
    if "/" not in command:
        import shutil  # ~2 ms of imports (archive codecs): only bare command names need it

        found = shutil.which(command, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(f"{command!r} not found on PATH")
        return found
    if not os.path.isfile(command):
        raise FileNotFoundError(f"{command} does not exist")
    if not os.access(command, os.X_OK):
        raise PermissionError(f"{command} is not executable")
    return command


class Child:
    """A spawned process that leads its own process group."""

    def __init__(self, pid: int, argv: Sequence[str]) -> None:
        self.pid = pid
        self.argv = tuple(argv)
        self.returncode: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None  # old kernel: fall back to polling with WNOWAIT

    def exited(self) -> bool:
        """True once the process has ended (it is not reaped, so its group id stays reserved)."""
        if self.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) once the process has ended."""
        if self.returncode is None and self.exited():
            self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to end; None when it is still running after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.wait_readable([], left)
        return self.returncode

    def wait_readable(self, fds: Sequence[int], timeout: float | None) -> list[int]:
        """Block until one of ``fds`` is readable, the process ends, or ``timeout`` passes."""
        watch = list(fds)
        if self.pidfd is not None:
            watch.append(self.pidfd)
        elif timeout is None or timeout > 0.01:
            timeout = 0.01  # no pidfd: look at the process again soon
        ready, _, _ = select.select(watch, [], [], timeout)
        return [fd for fd in ready if fd != self.pidfd]

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the process and everything in its group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def close(self) -> int | None:
        """Kill the group, reap the process, release its descriptor."""
        self.kill_group()
        code = self.wait(5.0)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        return code

    def _reap(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self.returncode = -1


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _working_directory(cwd: str | None) -> Iterator[None]:
    """Run the block in ``cwd``: posix_spawn has no chdir action before Python 3.14, so the
    parent changes directory around the spawn (one spawn at a time; sor uses absolute paths)."""
    if cwd is None:
        yield
        return
    with _CWD_LOCK:
        before = os.getcwd()
        os.chdir(cwd)
        try:
            yield
        finally:
            os.chdir(before)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    fds: Mapping[int, int] | None = None,
    cwd: str | None = None,
) -> Child:
    """Start ``argv`` in a new session and process group.

    ``stdin`` None means /dev/null; ``stdout``/``stderr`` None mean inherited. ``fds`` maps a
    descriptor number in the child to a descriptor of ours (e.g. ``{3: request_r, 4: answer_w}``).
    ``cwd`` (absolute) is the child's working directory. Raises OSError naming the command when
    it cannot be started.
    """
    path = resolve_executable(argv[0], env)
    mapping: dict[int, int] = dict(fds or {})
    if stdin is not None:
        mapping[0] = stdin
    if stdout is not None:
        mapping[1] = stdout
    if stderr is not None:
        mapping[2] = stderr
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
    if stdin is None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    low = max(mapping, default=2) + 1
    temps = []
    try:
        for target, source in sorted(mapping.items()):
            # Move sources above all targets first, so no dup2 clobbers another one's source.
            moved = fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, low)
            temps.append(moved)
            actions.append((os.POSIX_SPAWN_DUP2, moved, target))
        with _working_directory(cwd):
            pid = os.posix_spawn(path, list(argv), dict(env), file_actions=actions, setsid=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot start {argv[0]}: {exc.strerror}") from None
    finally:
        for fd in temps:
            os.close(fd)
    return Child(pid, argv)


def write_all(fd: int, data: bytes, child: Child, deadline: float) -> bool:
    """Write ``data`` to a non-blocking pipe before ``deadline``; False if the reader is gone."""
    view = memoryview(data)
    os.set_blocking(fd, False)
    while view:
        try:
            view = view[os.write(fd, view[: _CHUNK * 16]) :]
            continue
        except BlockingIOError:
            pass
        except BrokenPipeError:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        watch = [child.pidfd] if child.pidfd is not None else []
        _, writable, _ = select.select(watch, [fd], [], min(left, 0.01 if not watch else left))
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
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line
            scanned = len(self._buf)
            if scanned > self.max_line:
                self._buf.clear()
                raise ValueError(f"a message longer than {self.max_line} bytes")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            if self.child.wait_readable([self.fd], left):
                if not self._read():
                    raise EOFError
            elif self.child.exited() and not self._drain():
                raise EOFError

    def pending(self) -> bool:
        """True when the child wrote more than the lines read so far (e.g. an unasked answer)."""
        if self._buf:
            return True
        return bool(select.select([self.fd], [], [], 0)[0])

    def _read(self) -> bool:
        try:
            chunk = os.read(self.fd, _CHUNK * 16)
        except BlockingIOError:
            return True
        self._buf += chunk
        return bool(chunk)

    def _drain(self) -> bool:
        """After the child's exit: take what is left in the pipe; False when nothing was."""
        before = len(self._buf)
        while self._read() and len(self._buf) > before:
            before = len(self._buf)
        return b"\n" in self._buf


class LogPump(threading.Thread):
    """Forwards a long-lived child's stderr line by line, keeping the last lines for errors."""

    def __init__(self, fd: int, emit: Callable[[str], None]) -> None:
        super().__init__(daemon=True, name=f"sor-log-{fd}")
        self.fd = fd
        self.emit = emit
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def run(self) -> None:
        with os.fdopen(self.fd, "rb", buffering=_CHUNK) as stream:
            # bounded reads: a child writing endlessly without a newline cannot exhaust memory
            for raw in iter(lambda: stream.readline(_MAX_LOG_LINE), b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.tail.append(line)
                self.emit(line)


@dataclass(frozen=True)
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
) -> Completed:
    """Run a short-lived child: feed ``input``, collect stdout, stream stderr lines, never hang.

    The child's whole process group is killed when it times out, when its stdout passes
    ``max_output`` bytes, and once it has exited (so a grandchild holding a pipe cannot stall us).
    """
    deadline = time.monotonic() + timeout
    in_r, in_w = make_pipe()
    out_r, out_w = make_pipe()
    err_r, err_w = make_pipe()
    try:
        child = spawn(argv, env=env, stdin=in_r, stdout=out_w, stderr=err_w)
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
        self.pending: memoryview | None = memoryview(data)
        self.fds = {"in": in_w, "out": out_r, "err": err_r}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.out = bytearray()
        self.err = bytearray()
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.max_output = max_output
        self.on_line = on_line
        self.overflow = False

    def run(self, deadline: float) -> Completed:
        timed_out = False
        try:
            exited_at: float | None = None
            while "out" in self.fds or "err" in self.fds:
                now = time.monotonic()
                if exited_at is None and self.child.exited():
                    exited_at = now
                    self.child.kill_group()  # leftovers of a finished hook must not linger
                    self._close("in")
                limit = deadline
                if exited_at is not None:
                    limit = min(deadline, exited_at + _DRAIN_AFTER_EXIT)
                if now >= limit:
                    timed_out = exited_at is None
                    break
                self._step(limit - now, watch_exit=exited_at is None)
                if self.overflow:
                    break
        finally:
            self.child.kill_group()
            for name in list(self.fds):
                self._close(name)
            self.child.close()
        self._flush_err(final=True)
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
        if self.child.pidfd is not None:
            if watch_exit:
                readers.append(self.child.pidfd)
        else:
            left = min(left, 0.01)
        ready_r, ready_w, _ = select.select(readers, writers, [], left)
        if ready_w:
            self._feed()
        for name in ("out", "err"):
            if name in self.fds and self.fds[name] in ready_r:
                self._take(name)

    def _feed(self) -> None:
        assert self.pending is not None
        try:
            self.pending = self.pending[os.write(self.fds["in"], self.pending[: _CHUNK * 16]) :]
        except BlockingIOError:
            return
        except BrokenPipeError:
            self.pending = memoryview(b"")  # the child does not want its input: that is its call
        if not self.pending:
            self._close("in")

    def _take(self, name: str) -> None:
        try:
            chunk = os.read(self.fds[name], _CHUNK * 16)
        except BlockingIOError:
            return
        if not chunk:
            self._close(name)
        elif name == "out":
            self.out += chunk
            if len(self.out) > self.max_output:
                self.overflow = True
        else:
            self.err += chunk
            self._flush_err(final=False)

    def _flush_err(self, final: bool) -> None:
        *lines, rest = self.err.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = bytearray()
        self.err = bytearray(rest[-_MAX_LOG_LINE:])
        for raw in lines:
            line = bytes(raw[:_MAX_LOG_LINE]).decode("utf-8", "replace").rstrip("\r")
            self.tail.append(line)
            if self.on_line is not None:
                self.on_line(line)

    def _close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)
