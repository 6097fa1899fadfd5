"""The emulator's bootstrap process: started in its own group, watched until it ends, and ended with
everything it started (its process group, the children that left it, the orphans that came to the
emulator as their subreaper), as Lambda resets a sandbox. The state is guarded by the sandbox's
condition (``sor.emulator.sandbox``), which is notified when the bootstrap ends.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sor.emulator.extensions import Extensions
from sor.logs import Log
from sor.process import reaper, tree
from sor.process.spawn import Child
from sor.process.supervised import Retired, Supervised

_LOG_WAIT = 0.5  # for the last log lines of a bootstrap that ended
_STOP_GRACE = 2.0  # how long a stopping bootstrap may take to end its own children after SIGTERM


@dataclass
class Bootstrap:
    """A started bootstrap; ``code`` is set by its watcher once it has ended and been reaped."""

    proc: Supervised
    child: Child
    code: int | None = None
    ended: bool = False
    initialized: bool = False
    init_error: bytes | None = None
    descendants: set[int] = field(default_factory=set)
    extensions: Extensions = field(default_factory=Extensions)


def start_bootstrap(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    log: Log,
    retired: Retired,
    cv: threading.Condition,
) -> Bootstrap:
    """Start the bootstrap and its watcher; raises OSError. The caller holds ``cv``."""
    reaper.become_subreaper()  # orphans of the bootstrap come to us, to be found and reaped
    proc = Supervised(  # its stdout and stderr are the function's logs, as Lambda shows them
        list(argv), env=dict(env), emit=log.raw, retired=retired, cwd=cwd, logs=(1, 2)
    )
    boot = Bootstrap(proc, proc.child)
    watcher = threading.Thread(target=_watch, args=(boot, cv), daemon=True, name="sor-watch")
    watcher.start()
    return boot


def _watch(boot: Bootstrap, cv: threading.Condition) -> None:
    tree.wait_exit(boot.child, None)
    # Kills what is left of its group and reaps it; its last log lines may take a moment.
    code = boot.proc.stop(stderr_wait=_LOG_WAIT)
    with cv:
        boot.code = code
        boot.ended = True
        cv.notify_all()


def end_bootstrap(boot: Bootstrap, cv: threading.Condition, graceful: bool) -> None:
    """End ``boot`` and everything it started (SIGTERM first when ``graceful``, then SIGKILL);
    the caller holds ``cv``, which is released while waiting."""
    if not boot.ended:
        boot.descendants |= tree.descendants(boot.child.pid)
    if not boot.ended and graceful:
        boot.child.kill_group(signal.SIGTERM)
        cv.wait_for(lambda: boot.ended, _STOP_GRACE)
    if not boot.ended:
        boot.descendants |= tree.descendants(boot.child.pid)
        boot.child.kill_group(signal.SIGKILL)
    for pid in boot.descendants:  # children that left the group (e.g. `sor run`'s runtime)
        tree.kill_tree(pid)
    cv.wait_for(lambda: boot.ended, 5.0)
    # SIGKILL is asynchronous: wait (briefly) until they are really gone, so that nothing of
    # this bootstrap still runs when the next one starts or the emulator has stopped.
    until = time.monotonic() + 1.0
    while any(map(tree.running, boot.descendants)) and time.monotonic() < until:
        cv.wait(0.01)
