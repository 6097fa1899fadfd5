"""The language runtime that `_HANDLER` names, spawned before sor loads the rest of itself.

On Lambda `_HANDLER` is the function's handler setting, and most functions name a module of
their task root there: a Python module, or a Node.js file (`language_of`). `sor run` spawns that
module's runtime first, before it imports its loop, its config reader and its Runtime API client,
so that the runtime's own start overlaps all of sor's (docs/performance.md): only
`sor.runtime.language` and what it needs are loaded before the spawn. A Python runtime is forked
from sor's interpreter (sor.process.spawn.fork): its interpreter is already started.

The guess is made with a deferred load (runtimes/PROTOCOL.md): the process starts and loads only
the adapter, then waits; `sor.runtime.loop` lets it load the handler (`load`) only when the
config agrees, and stops it otherwise. So no user code ever runs in a wrong guess, and its
environment is the real runtime's (plus SOR_LOAD, which tells the adapter to wait).

From its first step `sor run` keeps the SIGTERM and SIGINT that arrive before its loop takes
over (`HeadStart.signals`): the loop then stops at once, and stops the runtime spawned here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from types import FrameType

from sor.errors import SorError
from sor.logs import Log
from sor.runtime.language import LanguageRuntime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Language


class HeadStart:
    """What `sor run` did before its loop was imported: the runtime it spawned (None: no guess),
    and the signals that arrived since, for the loop to act on."""

    def __init__(self) -> None:
        self.runtime: LanguageRuntime | None = None
        self.signals: list[int] = []
        self.previous = {s: signal.signal(s, self._keep) for s in (signal.SIGTERM, signal.SIGINT)}

    def _keep(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)


def head_start(env: Mapping[str, str], cwd: str, log: Log) -> HeadStart:
    """Keep signals from now on, and spawn the runtime of `_HANDLER` (not ready)."""
    head = HeadStart()
    head.runtime = _guess(env, cwd, log)
    return head


def _guess(env: Mapping[str, str], cwd: str, log: Log) -> LanguageRuntime | None:
    handler = env.get("_HANDLER", "")
    if not env.get("AWS_LAMBDA_RUNTIME_API"):
        return None  # `sor run` refuses to start: nothing to start it for
    if "." not in handler or ".." in handler or handler.startswith("/"):
        return None
    from sor.config.loader import task_root

    root = task_root(env, cwd)
    language = language_of(root, handler)
    if language is None:
        return None
    from sor.config.model import RuntimeSettings

    settings = RuntimeSettings(language=language, handler=handler)
    try:
        # Both can fail (no `node` to run, a spawn refused): the config may not even want this
        # runtime, so nothing is said here; the real attempt, after the config, reports it.
        guess = LanguageRuntime(settings, task_root=root, env=env, log=log, defer_load=True)
        guess.spawn(fork=True)  # Python: one interpreter start fewer (sor.process.spawn.fork)
    except SorError:
        return None
    return guess


def language_of(root: str, handler: str) -> Language | None:
    """The language whose module ``handler`` names in ``root``: a Python module (`a.b.fn`: `a/b.py`
    or the package `a/b/`), else a Node.js file (`dir/file.fn`: `dir/file.js`, `.mjs` or
    `.cjs`, the files aws-lambda-ric looks for first); None for anything else."""
    module, _, function = handler.rpartition(".")
    if module and function:
        path = os.path.join(root, *module.split("."))
        if os.path.isfile(f"{path}.py") or os.path.isfile(os.path.join(path, "__init__.py")):
            return "python"
    folder, _, name = handler.rpartition("/")
    file, dot, _ = name.partition(".")
    if file and dot:
        base = os.path.join(root, folder, file)
        if any(os.path.isfile(base + suffix) for suffix in (".js", ".mjs", ".cjs")):
            return "node"
    return None
