"""Every child process of sor starts and is talked to here.

Children are started with ``posix_spawn`` (cheap, and able to place pipes on exact descriptor
numbers such as the protocol's fd 3 and 4) in a process group of their own, so that killing a child
also kills whatever it started; or, for `sor run`'s first Python runtime, forked from sor's own
interpreter before it has loaded anything else (`fork`: one interpreter start fewer per cold
start, and the interpreter's pages shared). All IO with children is bounded by a deadline: nothing
here can block forever on a child that hangs, dies, or leaves a grandchild holding a pipe open.
Talking to them over pipes is ``sor.process.pipes``; short-lived children fed one input and read
to the end go through ``sor.process.exchange``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from sor.process.pipes import wait_fds

MARKS = "SOR_PROCESS_MARKS"  # every child's mark, inherited by all it starts (sor.process.reaper)


def marked(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """``env`` with a new mark appended to its marks, and that mark."""
    mark = os.urandom(8).hex()
    before = env.get(MARKS, "")
    return {**env, MARKS: f"{before}:{mark}" if before else mark}, mark


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

    def __init__(self, pid: int, argv: Sequence[str], mark: str = "") -> None:
        self.pid = pid
        self.argv = tuple(argv)
        self.mark = mark  # in SOR_PROCESS_MARKS of everything it starts (sor.process.reaper)
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
        """Kill the group and what left it (sor.process.reaper), reap the process, release its
        descriptor."""
        from sor.process import reaper  # not on the cold-start path: only stopping needs it

        escaped = reaper.escapees(self.pid, self.mark) if self.mark else set()
        self.kill_group()
        reaper.stop(escaped)
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


class Forked(BaseException):
    """Raised in the child of `fork`: sor's frames unwind to `sor.cli.main`, which runs ``main``
    there as the whole program, so that the child ends as a fresh interpreter would (its atexit
    functions, its threads, its files flushed). A BaseException: no ``except Exception`` of sor's
    takes it on the way."""

    def __init__(self, main: Callable[[], int]) -> None:
        super().__init__("forked")
        self.main = main


def _descriptors(
    stdin: int | None, stdout: int | None, stderr: int | None, fds: Mapping[int, int] | None
) -> dict[int, int]:
    """The child's descriptor number -> the descriptor of ours it is (stdin None: /dev/null)."""
    mapping: dict[int, int] = dict(fds or {})
    for target, source in ((0, stdin), (1, stdout), (2, stderr)):
        if source is not None:
            mapping[target] = source
    return mapping


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
    env, mark = marked(env)
    mapping = _descriptors(stdin, stdout, stderr, fds)
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
    return Child(pid, argv, mark)


def fork(
    argv: Sequence[str],
    main: Callable[[], int],
    *,
    env: Mapping[str, str],
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    fds: Mapping[int, int] | None = None,
    cwd: str,
) -> Child:
    """`spawn`'s child without the exec: this interpreter, forked, runs ``main`` (see `Forked`).

    ``argv`` is what the child stands for (`spawn` would have run it); the rest as for `spawn`,
    and the child starts as `spawn`'s would: in a new session, in ``cwd``, with ``env`` (and its
    mark), these descriptors and no other close-on-exec one. Only a single-threaded process may
    fork (sor forks before it starts a thread). Raises OSError when it cannot fork; the child
    raises `Forked`, or exits 127 saying why on its stderr when it cannot become ``argv``.
    """
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, f"cannot start {argv[0]}: no directory {cwd}")
    env, mark = marked(env)
    mapping = _descriptors(stdin, stdout, stderr, fds)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nothing buffered is written twice
            stream.flush()
    pid = os.fork()
    if pid:
        return Child(pid, argv, mark)
    try:
        _become(mapping, stdin is None, env, cwd)
    except BaseException as exc:  # the child must never return into sor's frames
        with contextlib.suppress(Exception):
            os.write(2, f"sor: cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)
    raise Forked(main)


def _become(mapping: Mapping[int, int], null_stdin: bool, env: Mapping[str, str], cwd: str) -> None:
    """In a forked child: what exec would give a spawned one (session, descriptors, signals)."""
    os.setsid()
    low = max(mapping, default=2) + 1
    moved = {
        target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, low)
        for target, source in mapping.items()
    }
    for target, source in moved.items():
        os.dup2(source, target)  # inheritable, as exec leaves them
    if null_stdin:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    keep = {0, 1, 2, *mapping}
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every possible number
        open_fds = list(range(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 16)))
    for fd in open_fds:  # exec would close every close-on-exec one
        if fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
                if not os.get_inheritable(fd):
                    os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # As a new interpreter starts: Python's SIGINT handler, SIGTERM's default, no wakeup fd.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
