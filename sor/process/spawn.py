"""Every child process of sor starts and is talked to here.

Children are started with ``posix_spawn`` (cheap, and able to place pipes on exact descriptor
numbers such as the protocol's fd 3 and 4) in a process group of their own, so that killing a child
also kills whatever it started. All IO with children is bounded by a deadline: nothing here can
block forever on a child that hangs, dies, or leaves a grandchild holding a pipe open. Talking to
them over pipes is ``sor.process.pipes``; short-lived children fed one input and read to the end go
through ``sor.process.exchange``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

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
    return Child(pid, argv, mark)
