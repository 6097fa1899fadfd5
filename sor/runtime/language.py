"""Supervises the language runtime process that hosts the handler (SPEC: Language runtime protocol).

The process is started once and serves many invocations over two pipes (requests on its fd 3,
answers on its fd 4; the messages are `sor.runtime.protocol`'s). When it dies, breaks the
protocol or runs past the deadline, its whole process group is killed and it is started again
lazily, at the next invocation, inside that invocation's deadline.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Mapping

from sor.errors import ConfigError, FunctionError, InvocationTimeout, RuntimeExited
from sor.limits import MAX_MESSAGE, too_large_error
from sor.logs import Log
from sor.process.spawn import describe_exit
from sor.process.supervised import STOP_GRACE, Retired, Supervised
from sor.resources import data_file
from sor.runtime.node_binary import node_binary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sor.config.model import RuntimeSettings
    from sor.payload import RawJson
    from sor.runtime.answer import Stream
    from sor.runtime.protocol import Message

PROTOCOL_VERSION = "1"
_PUMP_JOIN = 0.5  # how long to wait for the last stderr lines of a runtime that is not killed
_ADAPTERS = {"python": ("python", "sor_runtime.py"), "node": ("node", "sor_runtime.js")}
_SEALS = 64  # seals drawn from the kernel at once


def runtime_command(settings: RuntimeSettings, env: Mapping[str, str] = os.environ) -> list[str]:
    """The argv of the language runtime for these settings (ConfigError when there is none);
    ``env`` (SOR_LAYER_DIR, PATH) tells where to find `node`."""
    if settings.language == "exec":
        if not settings.command:
            raise ConfigError("runtime.command: the exec language runtime needs a command")
        return list(settings.command)
    if not settings.handler:
        raise ConfigError(f"runtime.handler: the {settings.language} language runtime needs one")
    adapter = data_file("runtimes", *_ADAPTERS[settings.language])
    if settings.command:
        return [*settings.command, adapter]
    if settings.language == "node":
        return [node_binary(env), adapter]
    return [sys.executable, adapter]


class LanguageRuntime:
    """One long-lived language runtime process and the protocol spoken with it."""

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        task_root: str | os.PathLike[str],
        env: Mapping[str, str],
        log: Log,
        defer_load: bool = False,
    ) -> None:
        """``defer_load``: the process starts without loading the handler until `load` says so."""
        self.settings = settings
        self.task_root = os.fspath(task_root)  # the process's working directory
        self.argv = runtime_command(settings, env)
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
        self._proc: Supervised | None = None
        self._retired = Retired()  # log pumps of killed runtimes, told to stop
        self._loaded = not defer_load
        self._sealed = False  # the running adapter echoes seals (its `ready` said so)
        self.concurrency = 1  # invocations it takes at once (its `ready` says; PROTOCOL.md)
        self.starts = 0
        self.last_stderr: list[str] = []
        self._seals: list[str] = []

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._proc.exited()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def process(self) -> Supervised | None:
        """The running process (sor.runtime.shared reads it from a thread of its own)."""
        return self._proc

    @property
    def sealed(self) -> bool:
        """Whether the running adapter echoes seals (its `ready` said so)."""
        return self._sealed

    def start(self, deadline: float) -> None:
        """Start the process and wait for `ready` (`spawn`, then `wait_ready`)."""
        self.spawn()
        self.load()  # a restart loads at once
        self.wait_ready(deadline)

    def spawn(self, *, fork: bool = False) -> None:
        """Start the process without waiting for it: `sor run` finishes its own init meanwhile.

        ``fork``: a Python runtime run by this interpreter (no `runtime.command`) is forked
        from it rather than started anew (sor.runtime.head_start, before sor loads the rest of
        itself or starts a thread). Raises RuntimeExited when it cannot be started.
        """
        self.stop()
        main = None
        if fork and self.settings.language == "python" and self.argv[0] == sys.executable:
            main = functools.partial(_adapter_main, self.argv[1])
        try:
            self._proc = Supervised(
                self.argv,
                env=self.env,
                emit=self.log.raw,
                retired=self._retired,
                cwd=self.task_root,
                requests=3,
                answers=4,
                logs=(1, 2) if self.log.framed else (2,),  # framed: its records are frames
                max_line=MAX_MESSAGE,
                main=main,
            )
        except (OSError, ValueError) as e:
            raise RuntimeExited(f"cannot start the {self.name}: {e}") from None
        self.starts += 1
        self._loaded = not self.defer_load

    def load(self) -> None:
        """Let a ``defer_load`` process load the handler (no-op otherwise, or when done).

        A process that died meanwhile is reported by `wait_ready`.
        """
        if self._loaded or self._proc is None:
            return
        self._loaded = True
        self._proc.write(b'{"type":"load"}\n', time.monotonic() + 5)

    def wait_ready(self, deadline: float, wake_fd: int | None = None) -> bool:
        """Wait for the `ready` of the process `spawn` started; False when ``wake_fd`` became
        readable first (a signal: the caller decides), True once ready.

        Raises FunctionError (its init_error, e.g. Runtime.ImportModuleError), RuntimeExited
        (it died or broke the protocol) or InvocationTimeout (no `ready` before ``deadline``).
        """
        proc = self._proc
        if proc is None or proc.reader is None:
            raise RuntimeExited(f"the {self.name} was not started")
        # Imported while the runtime boots, not after its `ready` (cold start).
        import json

        from sor.runtime import protocol

        while wake_fd is not None and (left := deadline - time.monotonic()) > 0:
            ready = proc.child.wait_readable([proc.reader.fd, wake_fd], left)
            if proc.reader.fd in ready or proc.exited():
                break
            if wake_fd in ready:
                return False
        try:
            line = self._readline(deadline, "starting", skip_oversized=False)
        except TimeoutError:
            self.stop()
            raise InvocationTimeout(f"the {self.name} did not become ready in time") from None
        except ValueError:
            raise self._broken(f"wrote a message longer than {MAX_MESSAGE} bytes") from None
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            message = None
        if not isinstance(message, dict):
            raise self._broken(f"wrote a line that is not a JSON object: {line[:80]!r}")
        if message.get("type") == "ready":
            # An adapter that echoes seals says so; from then on an answer without the seal is
            # not its answer. One that does not (protocol 1 as first written) is not checked.
            self._sealed = message.get("seal") is True
            wanted = message.get("concurrency", 1)
            ok = type(wanted) is int and wanted >= 1
            if not ok:
                self.log.warning(
                    f"{self.name}: ignored its concurrency {wanted!r}: not an integer >= 1"
                )
            self.concurrency = wanted if ok else 1
            return True
        if message.get("type") == "init_error":
            self.stop()
            raise self.function_error(protocol.well_formed(message.get("error")))
        raise self._broken(f"sent {message.get('type')!r} instead of 'ready'")

    def invoke(
        self,
        event: Any,
        context: Mapping[str, Any],
        deadline: float,
        debug: Mapping[str, Any] | None = None,
        *,
        function_timeout: float | None = None,
    ) -> RawJson | Stream:
        """Run the handler once on ``event`` (a value, or a RawJson passed on as it came); the
        JSON text of its result, or the `Stream` it opened (its chunks read as they are pulled,
        each before ``deadline``: sor.runtime.chunks).

        Raises FunctionError (the handler's ERROR), RuntimeExited (the runtime died or broke the
        protocol) or InvocationTimeout (``deadline`` passed); after the last two the runtime is
        killed and started again at the next call.
        """
        import sor.runtime.protocol as protocol  # no fromlist: C alone, once imported

        request_id = str(context.get("aws_request_id", ""))
        if not self.running:
            if self.starts:
                self.log.warning(f"restarting the {self.name}", request_id)
            self.start(deadline)
        assert self._proc is not None
        seal = self._seal()  # the answer must echo it: see PROTOCOL.md, "The seal"
        line = protocol.invoke_line(request_id, event, context, debug, seal)
        try:
            if not self._proc.write(line, deadline):
                raise self._died("while receiving the event")
            try:
                answer = self.next_message(request_id, seal, deadline)
            except ValueError:  # over MAX_MESSAGE, skipped up to its newline
                # Lambda answers this and keeps the runtime warm: the process is healthy,
                # only its answer was too big (only one invocation is ever in flight).
                raise FunctionError(too_large_error()) from None
            if isinstance(answer, protocol.StreamOpen):
                from sor.runtime import chunks  # only streams pay for it

                return chunks.opened(
                    self,
                    answer,
                    request_id,
                    seal,
                    deadline,
                    self._timeout_message(function_timeout),
                )
            self._flush_logs()
            if isinstance(answer, protocol.Error):
                raise self.function_error(answer.error, answer.xray)
            if isinstance(answer, (protocol.StreamChunk, protocol.StreamEnd)):
                raise self._broken(f"sent {protocol.kind_of(answer)} before opening a stream")
            return answer
        except TimeoutError:
            self.stop(graceful=False)
            raise InvocationTimeout(self._timeout_message(function_timeout)) from None

    def _seal(self) -> str:
        """A fresh random seal (32 hex digits), from a pool that one getrandom call fills."""
        if not self._seals:
            pool = os.urandom(16 * _SEALS).hex()
            self._seals = [pool[i : i + 32] for i in range(0, len(pool), 32)]
        return self._seals.pop()

    def next_message(self, request_id: str, seal: str, deadline: float) -> Message:
        """The next message answering the invoke of ``request_id`` sealed with ``seal`` (a
        result, error, stream, chunk or end), read before ``deadline``; lines answering
        anything else are skipped with a warning.

        Raises TimeoutError (``deadline`` passed: the caller stops the runtime), RuntimeExited
        (it died or broke the protocol: it is stopped), ValueError (a line over MAX_MESSAGE,
        skipped: the runtime is in step).
        """
        import sor.runtime.protocol as protocol

        assert self._proc is not None
        while True:
            try:
                answer = protocol.read_answer(
                    self._readline(deadline, "running the handler"),
                    request_id,
                    seal if self._sealed else None,
                )
            except protocol.Broken as exc:
                raise self._broken(str(exc)) from None
            if answer is not None:
                return answer
            self.log.warning(f"{self.name}: ignored an answer without this request's id and seal")

    def stop(
        self, graceful: bool = True, *, stderr_wait: float | None = None, grace: float = STOP_GRACE
    ) -> int | None:
        """Stop the process and everything it started; its exit code when there was one.

        ``stderr_wait``: how long to wait for its last stderr lines (end of file), by default
        none when killing it (graceful=False: an answer is waiting, and a grandchild that left
        the group may hold the pipe for ever) and _PUMP_JOIN otherwise. ``grace``: its time to
        exit after SIGTERM (the shutdown path gives it the rest of Lambda's time).
        """
        proc, self._proc = self._proc, None
        if stderr_wait is None:
            stderr_wait = _PUMP_JOIN if graceful else 0.0
        if proc is None:
            self._retired.finish(stderr_wait)
            return None
        self.last_stderr = proc.tail()  # the lines already read
        code = proc.stop(grace if graceful else 0.0, stderr_wait=stderr_wait, term=True)
        self.last_stderr = proc.tail()
        return code

    def _readline(self, deadline: float, doing: str, *, skip_oversized: bool = True) -> bytes:
        """The next line; an oversized one raises ValueError (skipped to its newline first with
        ``skip_oversized``: the process stays in step)."""
        assert self._proc is not None
        try:
            return self._proc.readline(deadline)
        except EOFError:
            raise self._died(f"while {doing}") from None
        except ValueError:
            if skip_oversized:
                self._skip_line(deadline, doing)
            raise

    def _skip_line(self, deadline: float, doing: str) -> None:
        """Discard the rest of an oversized line; the reader holds at most MAX_MESSAGE of it."""
        assert self._proc is not None
        while True:
            try:
                self._proc.readline(deadline)  # the tail of the line, up to its newline
                return
            except ValueError:
                continue  # another MAX_MESSAGE bytes of the same line, already dropped
            except EOFError:
                raise self._died(f"while {doing}") from None

    def abandon(self, request_id: str) -> None:
        """Give up the rest of ``request_id``'s answer (a stream cut short): what the process
        writes next would answer nobody, so it is stopped (started again at the next call)."""
        self.stop(graceful=False)

    def function_error(
        self, error: dict[str, Any], xray: Mapping[str, Any] | None = None
    ) -> FunctionError:
        """The handler's ERROR as the error sor reports, tagged with the language."""
        return FunctionError(error, language=self.settings.language, xray=xray)

    def broken(self, what: str, request_id: str | None = None) -> RuntimeExited:
        """The runtime broke the protocol (it ``what``, answering ``request_id``): it is
        stopped; the error to report."""
        return self._broken(what)

    def _flush_logs(self) -> None:
        if self.log.framed and self._proc is not None and self._proc.pump is not None:
            self._proc.pump.flush(_PUMP_JOIN)  # frames: its records before sor's line

    def _died(self, doing: str) -> RuntimeExited:
        # It ended by itself: the group is dead, so its stderr ends at once and its last lines
        # say why (unless a grandchild escaped with the pipe: then they wait no longer).
        code = self.stop(graceful=False, stderr_wait=_PUMP_JOIN)
        tail = self.last_stderr
        return RuntimeExited(
            f"the {self.name} exited {doing} with {describe_exit(code)}" + _tail_text(tail),
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


def _tail_text(tail: list[str]) -> str:
    return "; last stderr lines: " + " | ".join(tail[-5:]) if tail else ""


def _adapter_main(adapter: str) -> int:
    """In a child forked from sor (sor.process.spawn.fork): the Python adapter, run as
    `python ADAPTER` runs it (its argv and path, a `__main__` of its own; none of sor's modules
    left to import). Not runpy.run_path: it imports pkgutil, and typing with it."""
    import builtins
    import types
    from importlib.machinery import SourceFileLoader

    sys.argv[:] = [adapter]
    if sys.path and not getattr(sys.flags, "safe_path", False):  # 3.11+: -P, -I
        sys.path[0] = os.path.dirname(adapter)  # the script's folder, not sor's
    for name in [m for m in sys.modules if m == "sor" or m.startswith("sor.")]:
        del sys.modules[name]
    main = types.ModuleType("__main__")
    main.__file__ = adapter
    main.__loader__ = SourceFileLoader("__main__", adapter)
    main.__dict__.update(__cached__=None, __builtins__=builtins, __annotations__={})
    sys.modules["__main__"] = main
    with open(adapter, "rb") as source:
        code = compile(source.read(), adapter, "exec")
    exec(code, main.__dict__)  # noqa: S102 (the adapter sor ships, as `python` would run it)
    return 0
