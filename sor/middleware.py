"""Running one middleware hook: the runner for a middleware's mode, and what callers import.

Exec mode is ``sor.exec_runner``, persistent mode ``sor.persistent_runner``, what both share
(results, failures, the wire format) ``sor.hook``. The order in which hooks run is not decided
here: that is ``sor.pipeline``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sor.config import Middleware
from sor.exec_runner import ExecRunner
from sor.hook import (
    MAX_OUTPUT,
    RESPOND_STATUS,
    UNCHANGED,
    HookResult,
    HookRunner,
    encode,
    failure,
    hook_env,
    timeout_error,
)
from sor.logs import Log
from sor.persistent_runner import PersistentRunner, parse_answer

__all__ = [
    "MAX_OUTPUT",
    "RESPOND_STATUS",
    "UNCHANGED",
    "ExecRunner",
    "HookResult",
    "HookRunner",
    "PersistentRunner",
    "encode",
    "failure",
    "hook_env",
    "parse_answer",
    "runner_for",
    "timeout_error",
]


def runner_for(mw: Middleware, *, log: Log, env: Mapping[str, str]) -> HookRunner:
    """The runner for ``mw``'s mode."""
    if mw.mode == "persistent":
        return PersistentRunner(mw, log=log, env=env)
    return ExecRunner(mw, log=log, env=env)
