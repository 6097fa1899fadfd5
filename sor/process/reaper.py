"""The processes a supervised child left behind outside its process group, found and stopped.

Killing a child's process group misses what left the group: ``setsid``, ``start_new_session``,
a double fork. So every child sor spawns carries a mark of its own, appended to
``SOR_PROCESS_MARKS`` in its environment; everything it starts inherits the variable, whatever
its session or group, and keeps it when its parent dies. When sor stops the child it stops
every live process whose /proc/PID/environ carries the child's mark, with their descendants, and
the child's descendants still attached to it. What is not reached: a process that empties or
rewrites its environment *and* leaves the child's tree (a double fork after ``env -i``), and
processes of another user (their environ cannot be read). Linux only: without /proc nothing is
found and only the group is killed.

A process whose parent dies is reparented to the nearest *child subreaper*. The emulator makes
itself one (``become_subreaper``), so the orphans of a bootstrap are its children, which it reaps
here by their pid only: the exit status of sor's own children (``Child``, waited for with
``waitid(P_PID)``) is never taken.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from sor.process.spawn import MARKS
from sor.process.tree import below

_GONE_WAIT = 1.0  # how long to wait for killed processes to be gone (SIGKILL is asynchronous)
_PR_SET_CHILD_SUBREAPER = 36
_PROBE_RANGE = 32  # pids tried one by one (~5 us each) rather than listing /proc (~65 us)
_READ = 1 << 16


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux; calling it again does no
    harm); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # only the emulator pays for ctypes: `sor run` never calls this

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _last_pid() -> int | None:
    """The pid the kernel gave last in this pid namespace, None when it does not say."""
    try:
        return int(_read("/proc/sys/kernel/ns_last_pid"))
    except (OSError, ValueError):
        return None


def _read(path: str) -> bytes:
    """The whole of a /proc file: os.open/os.read take three system calls where ``open()``
    takes eight (fstat, ioctl, lseek...), and this runs for every process after every hook."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _READ)
        if len(data) < _READ:
            return data  # /proc files are read in one go when they fit
        parts = [data]
        while chunk := os.read(fd, _READ):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _stat(pid: str) -> tuple[int, int, bool] | None:
    """(parent pid, start time, zombie) of ``pid``, or None once it is gone."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold spaces
    if len(fields) < 20:
        return None
    return int(fields[1]), int(fields[19]), fields[0] == b"Z"


def _carries(pid: str, mark: bytes) -> bool:
    try:
        environ = _read(f"/proc/{pid}/environ")
    except OSError:
        return False  # gone, or another user's
    prefix = MARKS.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return mark in entry[len(prefix) :].split(b":")
    return False


def _candidates(root: int) -> tuple[list[str], bool]:
    """The pids that may have been started after ``root``, and whether all are (so their start
    time need not be compared with root's).

    Pids are given in increasing order until they wrap around: what started after root has a
    pid in (root, ns_last_pid]. Right after a hook that range is a few pids, most of them gone,
    and trying each is cheaper than listing /proc, whose size grows with the machine's process
    count (docs/performance.md). A long range (a long-lived child, a busy machine) is read from
    the /proc listing; after a wrap-around every process is looked at.
    """
    last = _last_pid()
    if last is not None and root <= last <= root + _PROBE_RANGE:
        return [str(pid) for pid in range(root + 1, last + 1)], True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [], True
    lowest = root if last is not None and last >= root else 0
    return [n for n in entries if n.isdigit() and int(n) > lowest and int(n) != root], False


def escapees(root: int, mark: str) -> set[int]:
    """The live processes that carry ``mark``, those below ``root``, and those below them."""
    me = os.getpid()
    children: dict[int, list[int]] = {}
    found: set[int] = set()
    names, all_younger = _candidates(root)
    since = 0  # nothing older than root can carry its mark
    if not all_younger:
        began = _stat(str(root))
        since = began[1] if began is not None else 0
    needle = mark.encode()
    for name in names:
        if int(name) == me:
            continue
        info = _stat(name)
        if info is None or info[2]:
            continue
        children.setdefault(info[0], []).append(int(name))
        if info[1] >= since and _carries(name, needle):
            found.add(int(name))
    return below(children, [root, *found], found)


def stop(pids: set[int]) -> None:
    """SIGKILL ``pids`` (and the groups they lead), reap those that are our children, and wait
    briefly until they are all gone."""
    if not pids:
        return  # the common case, after every exec hook
    me = os.getpid()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid != os.getpgrp():
                os.killpg(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
    until = time.monotonic() + _GONE_WAIT
    left = set(pids)
    while left and time.monotonic() < until:
        for pid in list(left):
            info = _stat(str(pid))
            if info is None:
                left.discard(pid)
            elif info[2]:
                if info[0] == me:  # an orphan we adopted as subreaper: ours to reap
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                left.discard(pid)
        if left:
            time.sleep(0.005)
