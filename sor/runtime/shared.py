"""One language runtime process shared by concurrent invocations (docs/concurrency.md).

An adapter whose `ready` says `"concurrency":N` (N > 1: Node, an exec adapter) runs up to N
invocations at once in one process. The slots sharing it write their invokes through one lock; a
reader thread routes every answer line by its `id`, seal checked, to the invocation waiting for
it, which reads its messages (`next_message`) within its own deadline. A timed-out invocation
*retires* its process: no new invocation goes to it (a replacement is started for them), and it
is killed once its other invocations answered or reached their deadlines. A crash fails the
invocations of that process only.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

from sor.errors import FunctionError, InvocationTimeout, RuntimeExited, SorError
from sor.limits import MAX_MESSAGE
from sor.logs import Log
from sor.payload import RawJson
from sor.process.spawn import describe_exit
from sor.process.supervised import STOP_GRACE
from sor.runtime import protocol
from sor.runtime.answer import Stream, started
from sor.runtime.language import LanguageRuntime

_STDERR_WAIT = 0.5  # for the last stderr lines of a process that ended by itself
# Framed logs: how long an answer waits for the records written before it. Short: the other
# invocations may keep the pipe busy, so the order is best effort here.
_FLUSH_WAIT = 0.05
# The head the shipped adapters write: the id (and seal) are read without decoding a big result.
_HEAD = re.compile(rb'\{"type":"[a-z_]+","id":("(?:[^"\\]|\\.)*")(?:,"seal":"([0-9a-f]*)")?')


class _Waiter:
    """An invocation waiting for its messages: its seal and the lines routed to it."""

    __slots__ = ("lines", "seal")

    def __init__(self, seal: str | None) -> None:
        self.seal = seal
        self.lines: queue.SimpleQueue[bytes | SorError] = queue.SimpleQueue()


class Host:
    """One running shared process: its runtime, the invocations in flight, its reader thread.

    The reader thread owns the process's descriptors: it alone stops the runtime (once the
    process ended), so that no descriptor is closed under a thread still reading it.
    """

    def __init__(self, runtime: LanguageRuntime, log: Log) -> None:
        proc = runtime.process
        assert proc is not None, "a shared process is made of a started runtime"
        self.runtime = runtime
        self.log = log
        self.pid = proc.pid
        self.sealed = runtime.sealed
        self.retired = False
        self.exit_code: int | None = None
        self._proc = proc
        self._lock = threading.Lock()  # the waiters, `retired` and `_ending`
        self._write = threading.Lock()  # one writer at a time, and none while it is stopped
        self._waiting: dict[str, _Waiter] = {}
        self._ending = False  # the reader is stopping it: it may be reaped, never signalled
        self._broke = ""  # set when it was killed for breaking the protocol
        self._refused = False  # it refused an invoke: it is ending (Node after a fatal error)
        self._ended: RuntimeExited | None = None
        self._thread = threading.Thread(target=self._read, name=f"sor-shared-{self.pid}")
        self._thread.daemon = True
        self._thread.start()

    @property
    def usable(self) -> bool:
        """Whether new invocations may go to it: not retired, and running (an adapter may exit
        on purpose right after its answers: Node after an uncaught exception)."""
        return not (self.retired or self._ending or self._refused or self._proc.child.exited())

    def send(self, request_id: str, line: bytes, seal: str | None, deadline: float) -> bool:
        """Write one invoke, its answer to come through `next_line`; False when the process
        refused it (it closed its requests, or ended): it never read it. TimeoutError past
        ``deadline``."""
        with self._lock:
            if self._ending:
                return False
            self._waiting[request_id] = _Waiter(seal)
        if not self._write.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError
        try:
            delivered = not self._ending and self._proc.write(line, deadline)
        finally:
            self._write.release()
        if not delivered:
            with self._lock:
                self._refused = True  # not usable: the reader reports its end
                self._waiting.pop(request_id, None)
        return delivered

    def next_line(self, request_id: str, deadline: float) -> bytes:
        """The next line routed to ``request_id``; TimeoutError past ``deadline``, RuntimeExited
        once the process died or broke the protocol."""
        waiter = self._waiting[request_id]
        try:
            item = waiter.lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, SorError):
            raise item
        return item

    def done(self, request_id: str) -> None:
        """``request_id`` is answered; a retired process is killed after its last one."""
        with self._lock:
            self._waiting.pop(request_id, None)
            last = self.retired and not self._waiting
        if last:
            self.kill()

    def retire(self) -> None:
        """No new invocations: it is killed once those in flight are done (`done`)."""
        with self._lock:
            self.retired = True

    def kill(self, signum: signal.Signals = signal.SIGKILL, *, broke: str = "") -> None:
        """Signal its group unless it is already being stopped; ``broke``: what it did wrong
        (its invocations are told so)."""
        with self._lock:
            if not self._ending:
                self._broke = self._broke or broke
                self._proc.child.kill_group(signum)

    def stop(self, grace: float) -> int | None:
        """SIGTERM, ``grace`` seconds to exit, then SIGKILL; its exit code."""
        if grace > 0:
            self.kill(signal.SIGTERM)
            self._thread.join(grace)
        self.kill()
        self._thread.join(STOP_GRACE + _STDERR_WAIT + 1.0)
        return self.exit_code

    def _read(self) -> None:
        why = "exited while running the handler"
        while True:
            try:
                line = self._proc.readline(None)
            except EOFError:
                break
            except ValueError:
                why = f"broke the protocol: it wrote a message longer than {MAX_MESSAGE} bytes"
                break
            problem = self._route(line)
            if problem is not None:
                why = f"broke the protocol: it {problem}"
                break
        self._end(f"broke the protocol: it {self._broke}" if self._broke else why)

    def _route(self, line: bytes) -> str | None:
        """Give ``line`` to the invocation it answers; what is wrong with it, if anything."""
        head = _HEAD.match(line)
        if head is not None:
            request_id: Any = json.loads(head.group(1))
            seal: Any = head.group(2).decode() if head.group(2) is not None else None
        else:
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                return f"wrote a line that is not JSON: {line[:80]!r}"
            if not isinstance(message, dict):
                return f"wrote a message that is not an object: {line[:80]!r}"
            request_id, seal = message.get("id"), message.get("seal")
        with self._lock:
            waiter = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if waiter is None or (waiter.seal is not None and seal != waiter.seal):
            self.log.warning(
                f"{self.runtime.name}: ignored an answer without the id and seal of an "
                "invocation it runs"
            )
            return None
        waiter.lines.put(line)
        return None

    def _end(self, why: str) -> None:
        with self._lock:
            self._ending = True  # not usable from now on
        self._proc.child.kill_group()  # not reaped yet: the group is still its own
        with self._write:  # a writer sees the process gone and lets go
            self.exit_code = self.runtime.stop(graceful=False, stderr_wait=_STDERR_WAIT)
        tail = self.runtime.last_stderr
        text = f"the {self.runtime.name} {why}"
        if why.startswith("exited"):
            text += f" with {describe_exit(self.exit_code)}"
        if tail:
            text += "; last stderr lines: " + " | ".join(tail[-5:])
        with self._lock:
            self._ended = RuntimeExited(text, stack_trace=tail)
            waiters = list(self._waiting.values())
        for waiter in waiters:
            waiter.lines.put(RuntimeExited(text, stack_trace=tail))


class SharedRuntime:
    """The language runtime of the slots that share a process, one `Host` at a time.

    It offers what `Invoker` calls on a `LanguageRuntime` (`invoke`, `stop`), from several
    threads at once.
    """

    def __init__(self, first: LanguageRuntime, make: Callable[[], LanguageRuntime]) -> None:
        """``first``: a runtime already ready; ``make``: a new one, for a replacement."""
        self.settings = first.settings
        self.name = first.name
        self.log = first.log
        self._make = make
        self._host: Host | None = Host(first, first.log)
        self._retired: list[Host] = []
        self._lock = threading.Lock()  # the current host, and starting its replacement
        self._requests: dict[str, Host] = {}
        self.starts = 1

    @property
    def pid(self) -> int | None:
        host = self._host
        return host.pid if host is not None else None

    @property
    def running(self) -> bool:
        host = self._host
        return host is not None and host.usable

    def invoke(
        self,
        event: Any,
        context: Mapping[str, Any],
        deadline: float,
        debug: Mapping[str, Any] | None = None,
        *,
        function_timeout: float | None = None,
    ) -> RawJson | Stream:
        """As `LanguageRuntime.invoke`; a timeout retires the process instead of killing it.

        A stream's invocation stays the process's until the stream ends (`_until_done`).
        """
        request_id = str(context.get("aws_request_id", ""))
        seal = os.urandom(16).hex()  # the answer must echo it: see PROTOCOL.md, "The seal"
        line = protocol.invoke_line(request_id, event, context, debug, seal)
        host = self._current(deadline, request_id)
        streaming = False
        try:
            if not host.send(request_id, line, seal if host.sealed else None, deadline):
                # It never read the invoke (it is ending: Node after a fatal error): a new one.
                host = self._current(deadline, request_id)
                if not host.send(request_id, line, seal if host.sealed else None, deadline):
                    raise RuntimeExited(f"the {self.name} refused the event as it started")
            self._requests[request_id] = host
            answer = self.next_message(request_id, seal, deadline)
            if isinstance(answer, protocol.StreamOpen):
                from sor.runtime import chunks  # only streams pay for it

                why = self._timeout_message(function_timeout)
                stream = chunks.opened(self, answer, request_id, seal, deadline, why)
                stream.chunks = started(self._until_done(stream.chunks, host, request_id))
                streaming = True
                return stream
            if isinstance(answer, (protocol.StreamChunk, protocol.StreamEnd)):
                raise self.broken(
                    f"sent {protocol.kind_of(answer)} before opening a stream", request_id
                )
            if self.log.framed and host.runtime.process is not None:
                pump = host.runtime.process.pump
                if pump is not None:
                    pump.flush(_FLUSH_WAIT)  # frames: its records before sor's line
            if isinstance(answer, protocol.Error):
                raise self.function_error(answer.error, answer.xray)
            return answer
        except TimeoutError:
            self._retire(host, request_id)
            raise InvocationTimeout(self._timeout_message(function_timeout)) from None
        finally:
            if not streaming:
                self._finish(host, request_id)

    def _until_done(
        self, body: Generator[bytes, None, None], host: Host, request_id: str
    ) -> Generator[bytes, None, None]:
        """``body``, the invocation finished on its process once it ends, however it ends."""
        try:
            yield b""  # `started`
            yield from body
        finally:
            body.close()  # not pulled to its end: its own cleanup (`abandon`) first
            self._finish(host, request_id)

    def _finish(self, host: Host, request_id: str) -> None:
        self._requests.pop(request_id, None)
        host.done(request_id)

    def abandon(self, request_id: str) -> None:
        """Give up the rest of a stream cut short (timeout, size limit, the API failing): its
        handler may still be running, so its process is retired, as after a timeout."""
        host = self._requests.get(request_id)
        if host is not None:
            self._retire(host, request_id)

    def function_error(
        self, error: dict[str, Any], xray: Mapping[str, Any] | None = None
    ) -> FunctionError:
        """The handler's ERROR as the error sor reports, tagged with the language."""
        return FunctionError(error, language=self.settings.language, xray=xray)

    def broken(self, what: str, request_id: str | None = None) -> RuntimeExited:
        """A process broke the protocol (it ``what``): it is killed, failing its invocations."""
        host = self._requests.get(request_id) if request_id is not None else None
        for target in [host] if host is not None else list(self._requests.values()):
            target.retire()
            target.kill(broke=what)
        return RuntimeExited(f"the {self.name} broke the protocol: it {what}; it was restarted")

    def next_message(self, request_id: str, seal: str, deadline: float) -> protocol.Message:
        """The next message of ``request_id``, decoded (lines without its seal are skipped).

        Raises TimeoutError past ``deadline``, RuntimeExited when its process died or broke the
        protocol (the process is then killed: its other invocations fail too).
        """
        host = self._requests[request_id]
        while True:
            line = host.next_line(request_id, deadline)
            try:
                message = protocol.read_answer(line, request_id, seal if host.sealed else None)
            except protocol.Broken as exc:
                raise self.broken(str(exc), request_id) from None
            if message is not None:
                return message

    def stop(
        self, graceful: bool = True, *, stderr_wait: float | None = None, grace: float = STOP_GRACE
    ) -> int | None:
        """Stop every process it started; the current one's exit code."""
        with self._lock:
            host, self._host = self._host, None
            retired, self._retired = self._retired, []
        for old in retired:
            old.stop(0.0)
        return host.stop(grace if graceful else 0.0) if host is not None else None

    def _current(self, deadline: float, request_id: str) -> Host:
        """The process new invocations go to, started again when it was retired or ended."""
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise InvocationTimeout(f"the {self.name} was not started again in time")
        try:
            host = self._host
            if host is not None and host.usable:
                return host
            self._retired = [old for old in self._retired if old.exit_code is None]
            if host is not None and host.retired:
                self._retired.append(host)
            self._host = None
            self.log.warning(f"starting a new {self.name}", request_id)
            runtime = self._make()
            runtime.start(deadline)
            self.starts += 1
            self._host = Host(runtime, self.log)
            return self._host
        finally:
            self._lock.release()

    def _retire(self, host: Host, request_id: str) -> None:
        host.retire()
        self.log.warning(
            f"the {self.name} (pid {host.pid}) is retired: it is stopped once its other "
            "invocations are done, and new ones go to a new process",
            request_id,
        )

    def _timeout_message(self, function_timeout: float | None) -> str:
        limit = f"after {function_timeout:.2f} seconds" if function_timeout else "at its deadline"
        return (
            f"Task timed out {limit}: the handler {self.settings.handler or self.name!r} ran "
            "past the graceful-timeout point and sor answered before Lambda's deadline "
            "(timeouts.grace); its process, shared with other invocations, was retired"
        )
