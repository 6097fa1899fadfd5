"""Running one middleware hook, in exec mode (a process per call) or persistent mode (one process).

Both runners turn whatever a middleware does into a ``HookResult`` or a ``MiddlewareError`` /
``MiddlewareTimeout`` naming the middleware and the hook, with the tail of its stderr. The order in
which hooks run is not decided here: that is ``sor.pipeline``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sor import exchange, process
from sor.config import Hook, Middleware
from sor.errors import MiddlewareError, MiddlewareTimeout
from sor.logs import Log

MAX_OUTPUT = 8 << 20  # the most a hook may answer; Lambda's own limit on a response is 6 MB
RESPOND_STATUS = 100  # exit status of an exec hook that answers now
_TAIL_IN_MESSAGE = 5
_STOP_GRACE = 0.2  # how long a persistent middleware may take to exit once its stdin is closed

Kind = Literal["replace", "unchanged", "respond"]


@dataclass(frozen=True)
class HookResult:
    """What a hook asked for: replace the payload, leave it, or answer now with ``payload``."""

    kind: Kind
    payload: Any = None


UNCHANGED = HookResult("unchanged")


class HookRunner(Protocol):
    """Runs the hooks of one middleware."""

    def start(self) -> None: ...

    def call(
        self, hook: Hook, payload: Any, context: Mapping[str, Any], timeout: float
    ) -> HookResult:
        """The hook's answer; raises ``MiddlewareError``/``MiddlewareTimeout``."""
        ...

    def close(self) -> None: ...


def failure(
    mw: Middleware, hook: str, what: str, tail: tuple[str, ...] | list[str] = ()
) -> MiddlewareError:
    """A ``MiddlewareError`` naming the middleware and hook, with the last lines of its stderr."""
    message = f"middleware {mw.name} ({hook}): {what}"
    if tail:
        message += "; stderr: " + " | ".join(tail[-_TAIL_IN_MESSAGE:])
    return MiddlewareError(message, stack_trace=list(tail))


def timeout_error(
    mw: Middleware, hook: str, timeout: float, tail: tuple[str, ...] | list[str] = ()
) -> MiddlewareTimeout:
    """A ``MiddlewareTimeout`` naming the middleware and hook."""
    message = f"middleware {mw.name} ({hook}): timed out after {max(timeout, 0.0):.3f}s"
    if tail:
        message += "; stderr: " + " | ".join(tail[-_TAIL_IN_MESSAGE:])
    return MiddlewareTimeout(message, stack_trace=list(tail))


def ended(code: int | None) -> str:
    """How a process ended, for a message."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def encode(data: Any) -> bytes:
    """A payload as compact UTF-8 JSON."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def hook_env(env: Mapping[str, str], hook: str, context: Mapping[str, Any]) -> dict[str, str]:
    """The function's environment plus what the protocol promises an exec hook."""
    out = dict(env)
    out["SOR_HOOK"] = hook
    out["SOR_REQUEST_ID"] = str(context.get("aws_request_id", ""))
    out["SOR_DEADLINE_MS"] = str(context.get("deadline_ms", ""))
    out["SOR_FUNCTION_NAME"] = str(context.get("function_name", ""))
    return out


class ExecRunner:
    """Exec mode: ``PATH HOOK`` with the payload on stdin, the new payload on stdout."""

    def __init__(self, mw: Middleware, *, log: Log, env: Mapping[str, str]) -> None:
        self.mw = mw
        self.log = log
        self.env = dict(env)

    def start(self) -> None:
        """Nothing to start: every call is its own process."""

    def close(self) -> None:
        """Nothing to stop: ``exchange.run`` leaves nothing behind."""

    def call(
        self, hook: Hook, payload: Any, context: Mapping[str, Any], timeout: float
    ) -> HookResult:
        if timeout <= 0:
            raise timeout_error(self.mw, hook, timeout)
        try:
            done = exchange.run(
                [str(self.mw.path), hook],
                env=hook_env(self.env, hook, context),
                input=encode(payload),
                timeout=timeout,
                max_output=MAX_OUTPUT,
                on_stderr_line=lambda line: self.log.child_line(self.mw.name, line),
            )
        except OSError as exc:
            raise failure(self.mw, hook, str(exc)) from None
        if done.timed_out:
            raise timeout_error(self.mw, hook, timeout, done.stderr_tail)
        if done.overflow:
            raise failure(self.mw, hook, f"wrote more than {MAX_OUTPUT} bytes", done.stderr_tail)
        code = done.returncode
        if code not in (0, RESPOND_STATUS):
            raise failure(self.mw, hook, ended(code), done.stderr_tail)
        text = done.stdout.rstrip(b"\r\n")
        if not text.strip():
            value, empty = payload, True
        else:
            try:
                value, empty = json.loads(text), False
            except ValueError as exc:
                raise failure(
                    self.mw, hook, f"wrote output that is not JSON ({exc})", done.stderr_tail
                ) from None
        if code == RESPOND_STATUS and hook != "after":
            return HookResult("respond", value)
        return UNCHANGED if empty else HookResult("replace", value)


def parse_answer(mw: Middleware, hook: str, line: bytes) -> HookResult | str:
    """One answer line of a persistent middleware: a result, or the message of a reported error.

    Raises ``MiddlewareError`` when the line breaks the protocol.
    """
    try:
        answer = json.loads(line)
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
        return HookResult("replace" if hook == "after" else "respond", value)
    if key == "error":
        return str(value)
    raise failure(mw, hook, f"answered with an unknown key {key!r}")


class _Process:
    """One running ``PATH persistent`` process and its pipes."""

    def __init__(self, mw: Middleware, log: Log, env: Mapping[str, str]) -> None:
        in_r, self.stdin = process.make_pipe()
        out_r, out_w = process.make_pipe()
        err_r, err_w = process.make_pipe()
        try:
            self.child = process.spawn(
                [str(mw.path), "persistent"], env=env, stdin=in_r, stdout=out_w, stderr=err_w
            )
        except OSError:
            for fd in (in_r, self.stdin, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.reader = process.LineReader(out_r, self.child, MAX_OUTPUT)
        self.pump = process.LogPump(err_r, lambda line: log.child_line(mw.name, line))
        self.pump.start()

    def stop(self, grace: float = 0.0) -> None:
        """Close its stdin (its cue to exit), give it ``grace`` seconds, then kill its group."""
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
        if grace > 0:
            self.child.wait(grace)
        self.child.close()
        os.close(self.reader.fd)
        self.pump.join(0.5)  # the group is dead, so its stderr reaches EOF at once


class PersistentRunner:
    """Persistent mode: one ``PATH persistent`` process, one JSON line in and out per call.

    A process that times out, dies or breaks the protocol is killed with its whole group at once
    and started again before its next use.
    """

    def __init__(self, mw: Middleware, *, log: Log, env: Mapping[str, str]) -> None:
        self.mw = mw
        self.log = log
        self.env = dict(env)
        self.proc: _Process | None = None
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
        with self._lock:
            if self.proc is not None:
                self.proc.stop(_STOP_GRACE)
                self.proc = None

    def call(
        self, hook: Hook, payload: Any, context: Mapping[str, Any], timeout: float
    ) -> HookResult:
        if timeout <= 0:
            raise timeout_error(self.mw, hook, timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            proc = self._ensure(hook)
            if proc.reader.pending():
                # a stale answer would be taken for this call's: never answer with another's
                self.log.warning(
                    f"middleware {self.mw.name} wrote a line nobody asked for; restarting it"
                )
                self._discard()
                proc = self._ensure(hook)
            line = encode({"hook": hook, "payload": payload, "context": dict(context)}) + b"\n"
            try:
                if not process.write_all(proc.stdin, line, proc.child, deadline):
                    raise EOFError
                answer = proc.reader.readline(deadline)
            except TimeoutError:
                raise timeout_error(self.mw, hook, timeout, self._discard()) from None
            except EOFError:
                # its stdout closes a moment before its exit status can be read
                code = proc.child.wait(_STOP_GRACE)
                what = "closed its stdout" if code is None else ended(code)
                tail = self._discard()
                raise failure(self.mw, hook, f"{what} before answering", tail) from None
            except ValueError:
                tail = self._discard()
                raise failure(
                    self.mw, hook, f"answered more than {MAX_OUTPUT} bytes", tail
                ) from None
            try:
                result = parse_answer(self.mw, hook, answer)
            except MiddlewareError:
                self._discard()  # out of step with the protocol: start afresh next time
                raise
        if isinstance(result, str):
            raise failure(self.mw, hook, f"reported an error: {result}")
        return result

    def _ensure(self, hook: str) -> _Process:
        if self.proc is not None and self.proc.child.exited():
            code = self.proc.child.poll()
            self.log.warning(f"middleware {self.mw.name} {ended(code)}; restarting it")
            self._discard()
        if self.proc is None:
            try:
                self.proc = _Process(self.mw, self.log, self.env)
            except OSError as exc:
                raise failure(self.mw, hook, str(exc)) from None
        return self.proc

    def _discard(self) -> list[str]:
        """Kill the process now (it is restarted on next use); the last lines of its stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        proc.stop()
        return list(proc.pump.tail)


def runner_for(mw: Middleware, *, log: Log, env: Mapping[str, str]) -> HookRunner:
    """The runner for ``mw``'s mode."""
    if mw.mode == "persistent":
        return PersistentRunner(mw, log=log, env=env)
    return ExecRunner(mw, log=log, env=env)
