"""Process-tree helpers of sor.process: descendants, running, kill_tree, wait_exit.

Real processes: a Python child that starts a `sleep` grandchild in a session of its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sor.process.spawn import spawn
from sor.process.tree import descendants, kill_tree, running, wait_exit

# Prints the grandchild's pid, then waits to be killed.
PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(300)\n"
)


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    yield parent, grandchild
    for pid in (parent.pid, grandchild):  # whatever the test left running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    parent.wait(10)


def gone(pid: int) -> bool:
    """Wait (up to 10 s: only a hang fails) until ``pid`` is no longer running."""
    until = time.monotonic() + 10
    while running(pid) and time.monotonic() < until:
        time.sleep(0.01)
    return not running(pid)


def test_descendants_finds_children_that_left_the_session(
    tree: tuple[subprocess.Popen[bytes], int],
) -> None:
    parent, grandchild = tree
    assert descendants(os.getpid()) >= {parent.pid, grandchild}
    assert descendants(parent.pid) == {grandchild}
    assert descendants(grandchild) == set()


def test_running_is_false_for_zombies_and_unknown_pids(
    tree: tuple[subprocess.Popen[bytes], int],
) -> None:
    parent, _ = tree
    assert running(parent.pid)
    os.kill(parent.pid, 9)
    assert gone(parent.pid)  # a zombie until reaped: not running
    assert parent.wait(10) == -9
    assert not running(parent.pid)
    assert not running(2**22 + 7)  # above the kernel's pid_max


def test_kill_tree_kills_the_process_and_its_descendants(
    tree: tuple[subprocess.Popen[bytes], int],
) -> None:
    parent, grandchild = tree
    kill_tree(parent.pid)
    assert gone(parent.pid) and gone(grandchild)
    assert parent.wait(10) == -9
    kill_tree(parent.pid)  # already gone: not an error


def test_wait_exit(tmp_path: Path) -> None:
    child = spawn(["sleep", "300"], env={"PATH": os.environ["PATH"]}, cwd=str(tmp_path))
    try:
        assert not wait_exit(child, 0.05)
        child.kill_group()
        assert wait_exit(child, 10)
    finally:
        assert child.close() == -9
