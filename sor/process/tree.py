"""Process trees: the descendants of a process (also those that left its group), killing them all.

The supervised children of sor lead process groups of their own; these helpers reach what left
those groups (``setsid``, a double fork), found through /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from sor.process.spawn import Child


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
    return below(children, [pid])


def below(
    children: dict[int, list[int]], roots: list[int], found: set[int] | None = None
) -> set[int]:
    """Every process under ``roots`` in the parent -> children map (added to ``found``)."""
    found = set() if found is None else found
    todo = list(roots)
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
