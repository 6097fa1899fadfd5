"""Every child process of sor starts and is talked to here.

Children are started with ``posix_spawn`` (cheap, and able to place pipes on exact descriptor
numbers such as the protocol's fd 3 and 4) in a process group of their own, so that killing a
child also kills whatever it started. All IO with children is bounded by a deadline: nothing here
can block forever on a child that hangs, dies, or leaves a grandchild holding a pipe open.
Short-lived children fed one input and read to the end go through ``sor.exchange``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

PIPE_SIZE = 1 << 20  # large pipes make multi-megabyte payloads cheap to pass
_F_SETPIPE_SZ = 1031
CHUNK = 1 << 20  # one read or write on a pipe
_READ_BUFFER = 1 << 16  # LineReader's reused read buffer: below malloc's mmap threshold
STDERR_TAIL_LINES = 20
MAX_LOG_LINE = 8192


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


def describe_exit(code: int | None) -> str:
    """How a process ended, for messages: ``exit code 3`` or ``signal SIGKILL``."""
    if code is None:
        return "an unknown status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


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
        ready, _ = wait_fds(watch, [], timeout)
        return [fd for fd in fds if fd in ready]

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
    parent changes directory around the spawn. Every spawn holds the lock, so none inherits
    another's directory; sor itself only ever uses absolute paths."""
    with _CWD_LOCK:
        if cwd is None:
            yield
            return
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
    command = argv[0]
    if cwd is not None and "/" in command:
        command = os.path.join(cwd, command)  # `./my-runtime` is relative to the child's cwd
    path = resolve_executable(command, env)
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
            pid = os.posix_spawn(
                path,
                list(argv),
                dict(env),
                file_actions=actions,
                setsid=True,
                # Python ignores these; a child must start with the defaults, as under Lambda.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot start {argv[0]}: {exc.strerror}") from None
    except ValueError as exc:  # e.g. a NUL byte in an argument or environment value
        raise OSError(errno.EINVAL, f"cannot start {argv[0]}: {exc}") from None
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
        return bool(wait_fds([self.fd], [], 0)[0])

    def _read(self) -> bool:
        # Into a small reused buffer: os.read(fd, CHUNK) mmaps, mremaps and munmaps 1 MB per
        # call (~35 us of CPU per language runtime answer); big messages just take more reads.
        if self._chunk is None:
            self._chunk = memoryview(bytearray(_READ_BUFFER))
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


class LogPump(threading.Thread):
    """Forwards a long-lived child's stderr line by line, keeping the last lines for errors."""

    def __init__(self, fd: int, emit: Callable[[str], None]) -> None:
        super().__init__(daemon=True, name=f"sor-log-{fd}")
        self.fd = fd
        self.emit = emit
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def run(self) -> None:
        with os.fdopen(self.fd, "rb", buffering=CHUNK) as stream:
            # bounded reads: a child writing endlessly without a newline cannot exhaust memory
            for raw in iter(lambda: stream.readline(MAX_LOG_LINE), b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.tail.append(line)
                try:
                    self.emit(line)
                except Exception:  # noqa: S112 - a broken log must not stop the draining
                    continue


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children that left its group too), found in /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # it ended while we looked
        fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold spaces
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] != b"Z"


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its descendants, and the process groups among them other than ours."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(target)
            if group == target and group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
            os.kill(target, signal.SIGKILL)


def wait_exit(child: Child, timeout: float | None) -> bool:
    """Block until ``child`` has ended (not reaped) or ``timeout`` passes; True once it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not child.exited():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        child.wait_readable([], left)
    return True
