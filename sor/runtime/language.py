"""Supervises the language runtime process that hosts the handler (SPEC: Language runtime protocol).

The process is started once and serves many invocations over two pipes (requests on its fd 3,
answers on its fd 4). When it dies, breaks the protocol or runs past the deadline, its whole
process group is killed and it is started again lazily, at the next invocation, inside that
invocation's deadline.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sor.config.model import RuntimeSettings
from sor.errors import ConfigError, FunctionError, InvocationTimeout, RuntimeExited
from sor.logs import Log
from sor.process import pipes
from sor.process.spawn import Child, describe_exit, spawn
from sor.resources import data_path

PROTOCOL_VERSION = "1"
MAX_MESSAGE = 7 * 1024 * 1024  # a 6 MB Lambda payload plus the envelope
STOP_GRACE = 0.2  # how long a stopped child (runtime, persistent middleware) may take to exit
_PUMP_JOIN = 0.5  # how long to wait for the last stderr lines of a runtime that is not killed
LAMBDA_MAX_RESPONSE = 6291556  # bytes; what Lambda's own error message names
TOO_LARGE_ERROR = {
    "errorType": "Function.ResponseSizeTooLarge",
    "errorMessage": (
        "Response payload size exceeded maximum allowed payload size "
        f"({LAMBDA_MAX_RESPONSE} bytes)."
    ),
    "stackTrace": [],
}


def finish_pumps(pumps: list[pipes.LogPump], wait: float) -> list[pipes.LogPump]:
    """Finish stderr pumps of stopped children (``wait``: for their end of file); those still
    running, told to stop, to be finished again later (so their descriptors are released)."""
    running = []
    for pump in pumps:
        pump.finish(wait)
        if pump.is_alive():
            running.append(pump)
        else:
            pump.finish(0.0)  # it ended during the first call: this one releases its stop pipe
    return running


class _Oversized(Exception):
    """The runtime wrote a message over MAX_MESSAGE; it was skipped up to its newline."""


def runtime_command(settings: RuntimeSettings) -> list[str]:
    """The argv of the language runtime for these settings (ConfigError when there is none)."""
    adapters = {"python": ("python", "sor_runtime.py"), "node": ("node", "sor_runtime.js")}
    if settings.language == "exec":
        if not settings.command:
            raise ConfigError("runtime.command: the exec language runtime needs a command")
        return list(settings.command)
    if not settings.handler:
        raise ConfigError(f"runtime.handler: the {settings.language} language runtime needs one")
    adapter = str(data_path("runtimes", *adapters[settings.language]))
    default = sys.executable if settings.language == "python" else "node"
    interpreter = list(settings.command) if settings.command else [default]
    return [*interpreter, adapter]


class LanguageRuntime:
    """One long-lived language runtime process and the protocol spoken with it."""

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        task_root: Path,
        env: Mapping[str, str],
        log: Log,
        defer_load: bool = False,
    ) -> None:
        """``defer_load``: the process starts without loading the handler until `load` says so."""
        self.settings = settings
        self.task_root = task_root
        self.argv = runtime_command(settings)
        self.env = {
            **env,
            "SOR_HANDLER": settings.handler or "",
            "SOR_IN_FD": "3",
            "SOR_OUT_FD": "4",
            "SOR_SIGNATURE": settings.signature,
            "SOR_PROTOCOL": PROTOCOL_VERSION,
        }
        if defer_load:
            self.env["SOR_LOAD"] = "deferred"
        self.defer_load = defer_load
        self.log = log
        self.name = f"{settings.language} language runtime ({settings.handler or self.argv[0]})"
        self._child: Child | None = None
        self._request_w: int | None = None
        self._reader: pipes.LineReader | None = None
        self._pump: pipes.LogPump | None = None
        self._ending: list[pipes.LogPump] = []  # pumps of killed runtimes, told to stop
        self._loaded = not defer_load
        self.starts = 0
        self.last_stderr: list[str] = []

    @property
    def running(self) -> bool:
        return self._child is not None and not self._child.exited()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self, deadline: float) -> None:
        """Start the process and wait for `ready` (`spawn`, then `wait_ready`)."""
        self.spawn()
        self.load()  # a restart loads at once
        self.wait_ready(deadline)

    def spawn(self) -> None:
        """Start the process without waiting for it: `sor run` finishes its own init meanwhile.

        Raises RuntimeExited when it cannot be started.
        """
        self.stop()
        req_r, req_w = pipes.make_pipe()
        ans_r, ans_w = pipes.make_pipe()
        err_r, err_w = pipes.make_pipe()
        try:
            child = spawn(
                self.argv,
                env=self.env,
                stderr=err_w,
                fds={3: req_r, 4: ans_w},
                cwd=str(self.task_root),
            )
        except OSError as e:
            for fd in (req_r, req_w, ans_r, ans_w, err_r, err_w):
                os.close(fd)
            raise RuntimeExited(f"cannot start the {self.name}: {e}") from None
        for fd in (req_r, ans_w, err_w):
            os.close(fd)
        self.starts += 1
        self._child = child
        self._request_w = req_w
        self._reader = pipes.LineReader(ans_r, child, MAX_MESSAGE)
        self._pump = pipes.LogPump(err_r, self.log.raw)
        self._pump.start()
        self._loaded = not self.defer_load

    def load(self) -> None:
        """Let a ``defer_load`` process load the handler (no-op otherwise, or when done).

        A process that died meanwhile is reported by `wait_ready`.
        """
        if self._loaded or self._child is None or self._request_w is None:
            return
        self._loaded = True
        pipes.write_all(self._request_w, b'{"type":"load"}\n', self._child, time.monotonic() + 5)

    def wait_ready(self, deadline: float, wake_fd: int | None = None) -> bool:
        """Wait for the `ready` of the process `spawn` started; False when ``wake_fd`` became
        readable first (a signal: the caller decides), True once ready.

        Raises FunctionError (its init_error, e.g. Runtime.ImportModuleError), RuntimeExited
        (it died or broke the protocol) or InvocationTimeout (no `ready` before ``deadline``).
        """
        if self._child is None or self._reader is None:
            raise RuntimeExited(f"the {self.name} was not started")
        while wake_fd is not None and (left := deadline - time.monotonic()) > 0:
            ready = self._child.wait_readable([self._reader.fd, wake_fd], left)
            if self._reader.fd in ready or self._child.exited():
                break
            if wake_fd in ready:
                return False
        try:
            message = self._read(deadline, "starting")
        except TimeoutError:
            self.stop()
            raise InvocationTimeout(f"the {self.name} did not become ready in time") from None
        if message.get("type") == "ready":
            return True
        if message.get("type") == "init_error" and isinstance(message.get("error"), dict):
            self.stop()
            raise FunctionError(message["error"])
        raise self._broken(f"sent {message.get('type')!r} instead of 'ready'")

    def invoke(
        self,
        event: Any,
        context: Mapping[str, Any],
        deadline: float,
        debug: Mapping[str, Any] | None = None,
        *,
        function_timeout: float | None = None,
    ) -> Any:
        """Run the handler once; its result.

        Raises FunctionError (the handler's ERROR), RuntimeExited (the runtime died or broke the
        protocol) or InvocationTimeout (``deadline`` passed); after the last two the runtime is
        killed and started again at the next call.
        """
        if not self.running:
            if self.starts:
                self.log.warning(
                    f"restarting the {self.name}", str(context.get("aws_request_id", ""))
                )
            self.start(deadline)
        assert self._child is not None and self._request_w is not None
        request_id = str(context.get("aws_request_id", ""))
        message: dict[str, Any] = {
            "type": "invoke",
            "id": request_id,
            "event": event,
            "context": dict(context),
        }
        if debug is not None:
            message["debug"] = dict(debug)
        import json  # imported after the spawn (cold start); a dict lookup from then on

        line = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        try:
            if not pipes.write_all(self._request_w, line, self._child, deadline):
                raise self._died("while receiving the event")
            while True:
                try:
                    answer = self._read(deadline, "running the handler", skip_oversized=True)
                except _Oversized:
                    # Lambda answers this and keeps the runtime warm: the process is healthy,
                    # only its answer was too big (only one invocation is ever in flight).
                    raise FunctionError(dict(TOO_LARGE_ERROR)) from None
                if answer.get("id") != request_id:
                    self.log.warning(f"{self.name}: ignored an answer for another request")
                    continue
                if answer.get("type") == "result":
                    return answer.get("result")
                if answer.get("type") == "error" and isinstance(answer.get("error"), dict):
                    raise FunctionError(answer["error"])
                raise self._broken(f"answered with type {answer.get('type')!r}")
        except TimeoutError:
            self.stop(graceful=False)
            raise InvocationTimeout(self._timeout_message(function_timeout)) from None

    def stop(
        self, graceful: bool = True, *, stderr_wait: float | None = None, grace: float = STOP_GRACE
    ) -> int | None:
        """Stop the process and everything it started; its exit code when there was one.

        ``stderr_wait``: how long to wait for its last stderr lines (end of file), by default
        none when killing it (graceful=False: an answer is waiting, and a grandchild that left
        the group may hold the pipe for ever) and _PUMP_JOIN otherwise.
        """
        child, self._child = self._child, None
        code = None
        if child is not None:
            if graceful and not child.exited():
                child.kill_group(signal.SIGTERM)
                child.wait(grace)  # after SIGTERM: its time to clean up (shutdown gives more)
            code = child.close()
        for fd in (self._request_w, self._reader.fd if self._reader else None):
            if fd is not None:
                os.close(fd)
        self._request_w = None
        self._reader = None
        if stderr_wait is None:
            stderr_wait = _PUMP_JOIN if graceful else 0.0
        pump, self._pump = self._pump, None
        if pump is not None:
            self._ending.append(pump)
            self.last_stderr = list(pump.tail)  # the lines already read
        self._ending = finish_pumps(self._ending, stderr_wait)
        if pump is not None:
            self.last_stderr = list(pump.tail)
        return code

    def _read(self, deadline: float, doing: str, skip_oversized: bool = False) -> dict[str, Any]:
        assert self._reader is not None
        try:
            line = self._reader.readline(deadline)
        except EOFError:
            raise self._died(f"while {doing}") from None
        except ValueError as e:
            if not skip_oversized:
                raise self._broken(f"wrote {e}") from None
            self._skip_line(deadline, doing)
            raise _Oversized from None
        import json

        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise self._broken(f"wrote a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise self._broken(f"wrote a message that is not an object: {line[:80]!r}")
        return message

    def _skip_line(self, deadline: float, doing: str) -> None:
        """Discard the rest of an oversized line; the reader holds at most MAX_MESSAGE of it."""
        assert self._reader is not None
        while True:
            try:
                self._reader.readline(deadline)  # the tail of the line, up to its newline
                return
            except ValueError:
                continue  # another MAX_MESSAGE bytes of the same line, already dropped
            except EOFError:
                raise self._died(f"while {doing}") from None

    def _died(self, doing: str) -> RuntimeExited:
        # It ended by itself: the group is dead, so its stderr ends at once and its last lines
        # say why (unless a grandchild escaped with the pipe: then they wait no longer).
        code = self.stop(graceful=False, stderr_wait=_PUMP_JOIN)
        tail = self.last_stderr
        return RuntimeExited(
            f"the {self.name} exited {doing} with {describe_exit(code)}" + self._tail_text(tail),
            stack_trace=tail,
        )

    def _broken(self, what: str) -> RuntimeExited:
        self.stop(graceful=False)
        return RuntimeExited(f"the {self.name} broke the protocol: it {what}; it was restarted")

    def _timeout_message(self, function_timeout: float | None) -> str:
        limit = f"after {function_timeout:.2f} seconds" if function_timeout else "at its deadline"
        return (
            f"Task timed out {limit}: the handler {self.settings.handler or self.argv[0]!r} ran "
            "past the graceful-timeout point and sor stopped it before Lambda's deadline "
            "(timeouts.grace); the language runtime was restarted"
        )

    @staticmethod
    def _tail_text(tail: list[str]) -> str:
        return "; last stderr lines: " + " | ".join(tail[-5:]) if tail else ""
