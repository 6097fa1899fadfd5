"""Persistent mode: one ``PATH persistent`` process serving every call, one JSON line each way.

A process that times out, dies or breaks the protocol is killed with its whole group at once and
started again before its next use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from sor.config.model import Hook, Middleware
from sor.errors import MiddlewareError
from sor.logs import Log
from sor.middleware.hook import (
    ANSWERING_HOOKS,
    MAX_OUTPUT,
    UNCHANGED,
    HookResult,
    answer_from_after,
    decode,
    encode,
    ended,
    failure,
    timeout_error,
)
from sor.process import pipes
from sor.process.spawn import spawn
from sor.runtime.language import STOP_GRACE, finish_pumps

_STDERR_WAIT = 0.5  # for the last stderr lines of a process that ended by itself


def parse_answer(mw: Middleware, hook: str, line: bytes) -> HookResult | str:
    """One answer line: a result, or why this call failed while the process stays in step.

    Raises ``MiddlewareError`` when the line breaks the protocol (the process is out of step).
    """
    try:
        answer = decode(line)
    except ValueError as exc:
        raise failure(mw, hook, f"answered with a line that is not JSON ({exc})") from None
    if not isinstance(answer, dict) or len(answer) > 1:
        raise failure(mw, hook, "answered with something other than {}, payload, respond or error")
    if not answer:
        return UNCHANGED
    ((key, value),) = answer.items()
    if key == "payload":
        return HookResult("replace", value)
    if key == "respond":
        if hook not in ANSWERING_HOOKS:
            return answer_from_after('answered {"respond": ...}', hook)
        return HookResult("respond", value)
    if key == "error":
        try:
            return f"reported an error: {value}"
        except RecursionError:
            return "reported an error (nested too deeply to show)"
    raise failure(mw, hook, f"answered with an unknown key {key!r}")


class _Process:
    """One running ``PATH persistent`` process and its pipes."""

    def __init__(self, mw: Middleware, log: Log, env: Mapping[str, str]) -> None:
        in_r, self.stdin = pipes.make_pipe()
        out_r, out_w = pipes.make_pipe()
        err_r, err_w = pipes.make_pipe()
        try:
            self.child = spawn(
                [str(mw.path), "persistent"], env=env, stdin=in_r, stdout=out_w, stderr=err_w
            )
        except (OSError, ValueError):  # ValueError: an environment posix_spawn refuses
            for fd in (in_r, self.stdin, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.reader = pipes.LineReader(out_r, self.child, MAX_OUTPUT)
        self.pump = pipes.LogPump(err_r, lambda line: log.child_line(mw.name, line))
        self.pump.start()

    def stop(self, grace: float = 0.0, stderr_wait: float = 0.0) -> None:
        """Close its stdin (its cue to exit), give it ``grace`` seconds, then kill its group.

        ``stderr_wait``: how long its last stderr lines may take; none by default, since a
        killed process's caller is answering (and a grandchild may hold the pipe for ever).
        """
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
        if grace > 0:
            self.child.wait(grace)
        self.child.close()
        os.close(self.reader.fd)
        self.pump.finish(stderr_wait)  # with 0: told to stop, released by the runner later


class PersistentHooks:
    """Persistent mode: one ``PATH persistent`` process, one JSON line in and out per call."""

    def __init__(self, mw: Middleware, *, log: Log, env: Mapping[str, str]) -> None:
        self.mw = mw
        self.log = log
        self.env = dict(env)
        self.proc: _Process | None = None
        self._ending: list[pipes.LogPump] = []  # pumps of killed processes, told to stop
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The pid of the running process, if there is one."""
        return None if self.proc is None else self.proc.child.pid

    def start(self) -> None:
        """Start the process; ``MiddlewareError`` when it cannot be started."""
        with self._lock:
            self._ensure("persistent")

    def close(self) -> None:
        """Stop the process and everything it started."""
        with self._lock:
            if self.proc is not None:
                self.proc.stop(STOP_GRACE, _STDERR_WAIT)
                self.proc = None
            self._release(_STDERR_WAIT)

    def call(
        self, hook: Hook, payload: Any, context: Mapping[str, Any], timeout: float
    ) -> HookResult:
        """The hook's answer; raises ``MiddlewareError``/``MiddlewareTimeout`` naming it."""
        if timeout <= 0:
            raise timeout_error(self.mw, hook, timeout)
        deadline = time.monotonic() + timeout
        try:
            line = encode({"hook": hook, "payload": payload, "context": dict(context)}) + b"\n"
        except (ValueError, TypeError, RecursionError) as exc:
            raise failure(self.mw, hook, f"cannot be given its input: {exc}") from None
        with self._lock:
            proc = self._ensure(hook)
            if proc.reader.pending():
                # a stale answer would be taken for this call's: never answer with another's
                self.log.warning(
                    f"middleware {self.mw.name} wrote a line nobody asked for; restarting it"
                )
                self._discard()
                proc = self._ensure(hook)
            result = self._exchange(proc, hook, line, deadline, timeout)
        if isinstance(result, str):
            raise failure(self.mw, hook, result)
        return result

    def _exchange(
        self, proc: _Process, hook: str, line: bytes, deadline: float, timeout: float
    ) -> HookResult | str:
        """Send one call and read its answer; the process is discarded when out of step."""
        try:
            if not pipes.write_all(proc.stdin, line, proc.child, deadline):
                raise EOFError
            answer = proc.reader.readline(deadline)
        except TimeoutError:
            raise timeout_error(self.mw, hook, timeout, self._discard()) from None
        except EOFError:
            # its stdout closes a moment before its exit status can be read
            code = proc.child.wait(STOP_GRACE)
            what = "closed its stdout" if code is None else ended(code)
            tail = self._discard(_STDERR_WAIT)  # it ended by itself: its last lines say why
            raise failure(self.mw, hook, f"{what} before answering", tail) from None
        except ValueError:
            tail = self._discard()
            raise failure(self.mw, hook, f"answered more than {MAX_OUTPUT} bytes", tail) from None
        try:
            return parse_answer(self.mw, hook, answer)
        except MiddlewareError:
            self._discard()  # out of step with the protocol: start afresh next time
            raise

    def _ensure(self, hook: str) -> _Process:
        if self.proc is not None and self.proc.child.exited():
            code = self.proc.child.poll()
            self.log.warning(f"middleware {self.mw.name} {ended(code)}; restarting it")
            self._discard()
        if self.proc is None:
            try:
                self.proc = _Process(self.mw, self.log, self.env)
            except (OSError, ValueError) as exc:
                raise failure(self.mw, hook, str(exc)) from None
        return self.proc

    def _discard(self, stderr_wait: float = 0.0) -> list[str]:
        """Kill the process now (it is restarted on next use); the last lines of its stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        proc.stop(0.0, stderr_wait)
        self._ending.append(proc.pump)
        self._release(0.0)
        return list(proc.pump.tail)

    def _release(self, wait: float) -> None:
        """Finish the pumps of killed processes (their threads and descriptors)."""
        self._ending = finish_pumps(self._ending, wait)
