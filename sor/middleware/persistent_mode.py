"""Persistent mode: one ``PATH persistent`` process serving every call, one JSON line each way.

A process that times out, dies or breaks the protocol is killed with its whole group at once and
started again before its next use.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from sor.config.model import Middleware
from sor.errors import MiddlewareError
from sor.logs import Log
from sor.middleware.hook import (
    ANSWERING_HOOKS,
    MAX_OUTPUT,
    UNCHANGED,
    HookResult,
    answer_from_after,
    ended,
    failure,
    timeout_error,
    visible_env,
)
from sor.payload import decode, encode
from sor.process.supervised import STOP_GRACE, Retired, Supervised

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook

_STDERR_WAIT = 0.5  # for the last stderr lines of a process that ended by itself
# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def request_line(message: dict[str, Any]) -> bytes:
    """One call as a line of compact JSON, as ``sor.payload.encode`` writes it.

    Raises ValueError, TypeError or RecursionError for what cannot be JSON at all.
    """
    try:
        return _ENCODE(message).encode() + b"\n"
    except ValueError:  # NaN, infinities, a lone surrogate: sor.payload's way with them
        return encode(message) + b"\n"


def parse_answer(mw: Middleware, hook: str, line: bytes) -> HookResult | str:
    """One answer line: a result, or why this call failed while the process stays in step.

    Raises ``MiddlewareError`` when the line breaks the protocol (the process is out of step).
    """
    if line == b"{}":
        return UNCHANGED  # the most common answer (a middleware that only looks), without JSON
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


class PersistentHooks:
    """Persistent mode: one ``PATH persistent`` process, one JSON line in and out per call."""

    def __init__(self, mw: Middleware, *, log: Log, env: Mapping[str, str]) -> None:
        self.mw = mw
        self.log = log
        self.env = visible_env(env, mw.env)  # middlewares[].env
        self.proc: Supervised | None = None
        self._retired = Retired()  # pumps of killed processes, told to stop
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The pid of the running process, if there is one."""
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start the process; ``MiddlewareError`` when it cannot be started."""
        with self._lock:
            self._ensure("persistent")

    def close(self) -> None:
        """Stop the process and everything it started."""
        with self._lock:
            if self.proc is not None:
                self.proc.stop(STOP_GRACE, stderr_wait=_STDERR_WAIT)
                self.proc = None
            self._retired.finish(_STDERR_WAIT)

    def call(
        self,
        hook: Hook,
        payload: Any,
        context: Mapping[str, Any],
        timeout: float,
        *,
        stream: bool = False,
    ) -> HookResult:
        """The hook's answer; raises ``MiddlewareError``/``MiddlewareTimeout`` naming it."""
        if timeout <= 0:
            raise timeout_error(self.mw, hook, timeout)
        deadline = time.monotonic() + timeout
        try:
            message = {"hook": hook, "payload": payload, "context": dict(context)}
            if stream:
                message["stream"] = True  # the payload is a stream's metadata, or its error
            line = request_line(message)
        except (ValueError, TypeError, RecursionError) as exc:
            raise failure(self.mw, hook, f"cannot be given its input: {exc}") from None
        with self._lock:
            proc = self._ensure(hook)
            if proc.reader is not None and proc.reader.pending():
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
        self, proc: Supervised, hook: str, line: bytes, deadline: float, timeout: float
    ) -> HookResult | str:
        """Send one call and read its answer; the process is discarded when out of step."""
        try:
            if not proc.write(line, deadline):
                raise EOFError
            answer = proc.readline(deadline)
            if proc.pump is not None:
                proc.pump.flush(_STDERR_WAIT)  # its log lines before its answer come first
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

    def _ensure(self, hook: str) -> Supervised:
        if self.proc is not None and self.proc.exited():
            code = self.proc.child.poll()
            self.log.warning(f"middleware {self.mw.name} {ended(code)}; restarting it")
            self._discard()
        if self.proc is None:
            try:
                self.proc = Supervised(
                    [str(self.mw.path), "persistent"],
                    env=self.env,
                    emit=lambda line: self.log.child_line(self.mw.name, line),
                    retired=self._retired,
                    requests=0,
                    answers=1,
                    logs=(2,),
                    max_line=MAX_OUTPUT,
                )
            except (OSError, ValueError) as exc:  # ValueError: an environment posix_spawn refuses
                raise failure(self.mw, hook, str(exc)) from None
        return self.proc

    def _discard(self, stderr_wait: float = 0.0) -> list[str]:
        """Kill the process now (it is restarted on next use); the last lines of its stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        proc.stop(0.0, stderr_wait=stderr_wait)
        return proc.tail()
