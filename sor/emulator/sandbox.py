"""The emulated Lambda sandbox: one bootstrap process, ``concurrency`` invocations at a time.

The state here is what the Runtime API server (in ``sor.emulator``) and the invoke callers share:
the current bootstrap process, the invocations in flight (keyed by request id), and their answers.
Callers of ``invoke`` beyond ``concurrency`` are queued, first come first served; each gets exactly
one ``InvokeResult``, whatever the bootstrap does (answer, stream, fail, time out, die, never
start). A bootstrap that dies is killed with everything it started and is started again for the
next invocation, as Lambda resets a sandbox; so is one that times out, unless several invocations
run at once (Lambda Managed Instances do not stop an invocation past its timeout: its caller gets
the timeout, the bootstrap goes on, and a late answer is refused).
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sor.emulator import answers
from sor.emulator.answers import InvokeResult
from sor.emulator.bootstrap import Bootstrap, end_bootstrap, start_bootstrap
from sor.emulator.extensions import Outcome
from sor.emulator.stream import ChunkStream, StreamError
from sor.limits import MAX_PAYLOAD
from sor.logs import Log
from sor.process.supervised import Retired

_TOO_LARGE = f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."


@dataclass
class Emulated:
    """One invocation of the emulator, handed (or to be handed) to the bootstrap (the runtime's
    own view of an invocation is ``sor.runtime.api.Invocation``)."""

    request_id: str
    payload: bytes
    deadline: float  # time.monotonic()
    deadline_ms: int  # epoch milliseconds, for Lambda-Runtime-Deadline-Ms
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    delivered: bool = False
    answer: InvokeResult | None = None
    start: float = 0.0


def trace_id() -> str:
    """An X-Ray trace header value shaped like Lambda's."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0"


class Sandbox:
    """Supervises the bootstrap and serialises invocations to it (see the module docstring)."""

    def __init__(
        self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout: float, log: Log
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.timeout = timeout
        self.log = log
        self.concurrency = 1
        self._cv = threading.Condition()
        self._tickets = 0  # callers are let in first come first served, `concurrency` at once
        self._turn = 0
        self._boot: Bootstrap | None = None
        self._live: dict[str, Emulated] = {}  # let in and not yet answered (or still streaming)
        self._queue: collections.deque[Emulated] = collections.deque()  # for the bootstrap to take
        self._answered: collections.deque[str] = collections.deque(maxlen=256)
        self._retired = Retired()
        self._stopping = False

    def start(self) -> None:
        """Start the bootstrap now (init runs before the first invocation). Raises OSError."""
        with self._cv:
            self._spawn()

    def _spawn(self) -> Bootstrap:
        """Start a new bootstrap; the caller holds ``_cv``."""
        env = {**self.env, "PWD": self.cwd}
        self._boot = start_bootstrap(self.argv, env, self.cwd, self.log, self._retired, self._cv)
        return self._boot

    def _kill(self, boot: Bootstrap, graceful: bool) -> None:
        """End ``boot`` and everything it started; the caller holds ``_cv``."""
        end_bootstrap(boot, self._cv, graceful)
        if self._boot is boot:
            self._boot = None
        self._cv.notify_all()

    def stop(self) -> None:
        """Stop the bootstrap and fail whatever is still waiting."""
        with self._cv:
            self._stopping = True
            if self._boot is not None:
                self._kill(self._boot, graceful=True)
            self._cv.notify_all()

    def pid(self) -> int | None:
        """The process id of the running bootstrap, if any."""
        with self._cv:
            return self._boot.child.pid if self._boot and not self._boot.ended else None

    def invoke(
        self,
        payload: bytes,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        *,
        tenant_id: str | None = None,
    ) -> InvokeResult:
        """Run one invocation through the bootstrap; always returns exactly one answer (for a
        stream: once it has begun; its invocation ends when the stream does)."""
        with self._cv:
            ticket = self._tickets
            self._tickets += 1
            self._cv.wait_for(
                lambda: (
                    self._turn == ticket and (len(self._live) < self.concurrency or self._stopping)
                )
            )
            self._turn += 1
            self._cv.notify_all()
            return self._invoke(payload, client_context, cognito_identity, tenant_id)

    def _invoke(
        self,
        payload: bytes,
        client_context: str | None,
        cognito_identity: str | None,
        tenant_id: str | None = None,
    ) -> InvokeResult:
        """One invocation, let in; the caller holds ``_cv``."""
        start = time.monotonic()
        request_id = str(uuid.uuid4())
        if self._stopping:
            return answers.spawn_error_answer(request_id, "the emulator is stopping")
        if self._boot is not None and self._boot.ended:
            self._boot = None  # died between invocations: Lambda would start a new sandbox
        try:
            boot = self._boot or self._spawn()
        except OSError as exc:
            return answers.spawn_error_answer(request_id, str(exc))
        deadline_ms = int((time.time() + self.timeout) * 1000)
        inv = Emulated(request_id, payload, start + self.timeout, deadline_ms, trace_id())
        inv.client_context, inv.cognito_identity = client_context, cognito_identity
        inv.tenant_id, inv.start = tenant_id, start
        self._live[request_id] = inv
        self._queue.append(inv)
        self.log.info(f"START RequestId: {request_id} Version: $LATEST")
        self._cv.notify_all()
        answer: InvokeResult | None = None
        try:
            answer = self._await(inv, boot)
        finally:
            if answer is None or answer.stream is None:
                self._finish(inv)  # never left for the bootstrap to take, whatever happened
        return answer

    def _finish(self, inv: Emulated) -> None:
        """``inv`` is over (answered, or its stream has ended); the caller holds ``_cv``."""
        if self._live.pop(inv.request_id, None) is None:
            return
        if any(queued is inv for queued in self._queue):
            self._queue = collections.deque(queued for queued in self._queue if queued is not inv)
        self._answered.append(inv.request_id)  # so that a late post is told it is too late
        took = (time.monotonic() - inv.start) * 1000
        self.log.info(f"END RequestId: {inv.request_id}")
        self.log.info(f"REPORT RequestId: {inv.request_id}\tDuration: {took:.2f} ms")
        self._cv.notify_all()

    def _await(self, inv: Emulated, boot: Bootstrap) -> InvokeResult:
        """Wait for the answer, the bootstrap's end, its init error, or the deadline."""
        while True:
            if inv.answer is not None:
                return inv.answer
            if self._stopping:
                return answers.spawn_error_answer(inv.request_id, "the emulator was stopped")
            if boot.ended and boot.initialized and not inv.delivered:
                # It died after its last answer, before taking this invocation: as Lambda does,
                # run the invocation on a new sandbox rather than blame it for the old one.
                if self._boot is not None and not self._boot.ended:
                    boot = self._boot  # another caller has started it already
                    continue
                try:
                    boot = self._spawn()
                except OSError as exc:
                    return answers.spawn_error_answer(inv.request_id, str(exc))
                continue
            if boot.ended:
                if boot.init_error is not None and not inv.delivered:
                    return answers.init_error_answer(boot.init_error)
                reason = answers.exit_reason(boot.code)
                self.log.error(f"bootstrap exited: {reason}", inv.request_id)
                return answers.exit_answer(inv.request_id, reason)
            if boot.init_error is not None and not inv.delivered:
                self._kill(boot, graceful=False)
                return answers.init_error_answer(boot.init_error)
            left = inv.deadline - time.monotonic()
            if left <= 0:
                self.log.error(f"Task timed out after {self.timeout:.2f} seconds", inv.request_id)
                if self.concurrency == 1:  # several at once: Managed Instances let it run on
                    self._kill(boot, graceful=False)
                return answers.timeout_answer(self.timeout)
            self._cv.wait(left)

    def next_invocation(self, peer_gone: Callable[[], bool]) -> Emulated | None:
        """Block until there is an invocation for the bootstrap (None: the caller must hang up)."""
        with self._cv:
            boot = self._boot
            if boot is None or peer_gone():  # a request left over from a killed bootstrap
                return None
            boot.initialized = True
            while not self._stopping and self._boot is boot and not boot.ended:
                if self._queue:
                    if peer_gone():  # a connection left over from a killed bootstrap
                        return None
                    inv = self._queue.popleft()
                    inv.delivered = True
                    return inv
                self._cv.wait(0.5)
                if peer_gone():
                    return None
            return None

    def return_invocation(self, inv: Emulated) -> None:
        """Hand ``inv`` out again: it could not be written to the bootstrap that asked for it."""
        with self._cv:
            if inv.answer is None and inv.request_id in self._live:
                inv.delivered = False
                self._queue.appendleft(inv)
                self._cv.notify_all()

    def _delivered(self, request_id: str) -> Emulated | tuple[int, str, str]:
        inv = self._live.get(request_id)
        if inv is not None and inv.delivered and inv.answer is None:
            return inv
        if request_id in self._answered or inv is not None:
            return 403, "InvalidStateTransition", f"invocation {request_id} was already answered"
        return 400, "InvalidRequestID", f"no invocation {request_id} is in progress"

    def post_response(self, request_id: str, body: bytes) -> tuple[int, str, str]:
        """The bootstrap's response: (HTTP status, errorType, message) for the Runtime API."""
        if len(body) > MAX_PAYLOAD:
            return self.response_too_large(request_id, len(body))
        return self._settle(request_id, answers.success_answer(body))

    def response_too_large(self, request_id: str, size: int) -> tuple[int, str, str]:
        """Refuse a response over Lambda's limit; the invocation fails as Lambda fails it."""
        outcome = self._settle(request_id, answers.too_large_answer(size, MAX_PAYLOAD))
        return outcome if outcome[0] != 202 else (413, "RequestEntityTooLarge", _TOO_LARGE)

    def post_error(self, request_id: str, body: bytes, error_type: str) -> tuple[int, str, str]:
        """The bootstrap's invocation error (ERROR JSON)."""
        error = answers.error_body(body, error_type)
        return self._settle(request_id, answers.function_error_answer(error))

    def _settle(self, request_id: str, answer: InvokeResult) -> tuple[int, str, str]:
        with self._cv:
            inv = self._delivered(request_id)
            if isinstance(inv, tuple):
                return inv
            inv.answer = answer
            self._cv.notify_all()
            return 202, "", ""

    def open_stream(
        self, request_id: str, content_type: str
    ) -> tuple[Emulated, ChunkStream] | tuple[int, str, str]:
        """The bootstrap begins a streamed response: the stream its caller now reads, or the
        Runtime API's refusal (as for ``post_response``)."""
        with self._cv:
            inv = self._delivered(request_id)
            if isinstance(inv, tuple):
                return inv
            stream = ChunkStream(content_type)
            inv.answer = answers.streamed_answer(stream)
            self._cv.notify_all()
            return inv, stream

    def close_stream(self, inv: Emulated, error: StreamError | None, timed_out: bool) -> None:
        """The bootstrap's stream for ``inv`` has ended (in ``error``, or past its deadline:
        the bootstrap is then reset as for any timeout, when it runs one invocation at a time)."""
        with self._cv:
            stream = inv.answer.stream if inv.answer is not None else None
            if stream is not None:
                stream.end(error)
            if timed_out:
                self.log.error(f"Task timed out after {self.timeout:.2f} seconds", inv.request_id)
                if self.concurrency == 1 and self._boot is not None:
                    self._kill(self._boot, graceful=False)
            self._finish(inv)

    def fail_invocation(self, inv: Emulated, answer: InvokeResult) -> None:
        """End ``inv`` with ``answer`` (it could not be handed to the bootstrap at all)."""
        with self._cv:
            if inv.answer is None:
                inv.answer = answer
                self._cv.notify_all()

    def register_extension(self, name: str, body: bytes) -> Outcome:
        """An extension of the running bootstrap registers (sor.emulator.extensions)."""
        with self._cv:
            boot = self._boot
            if boot is None or boot.ended:
                return 403, "Extension.RegistrationClosed", "no bootstrap is starting"
            return boot.extensions.register(name, body, closed=boot.initialized)

    def hold_extension(self, identifier: str, peer_gone: Callable[[], bool]) -> bool:
        """An extension's `event/next`: held until its bootstrap ends (no event is ever sent);
        False at once for an identifier the running bootstrap did not register."""
        with self._cv:
            boot = self._boot
            if boot is None or not boot.extensions.known(identifier):
                return False
            while not self._stopping and self._boot is boot and not boot.ended:
                self._cv.wait(0.5)
                if peer_gone():
                    break
            return True

    def post_init_error(self, body: bytes, error_type: str) -> tuple[int, str, str]:
        """The bootstrap could not initialise; refused once init is over, as Lambda does."""
        with self._cv:
            boot = self._boot
            if boot is None or boot.initialized or boot.init_error is not None:
                return 403, "InvalidStateTransition", "init/error is only accepted during init"
            boot.init_error = answers.error_body(body, error_type)
            self.log.error(f"init error: {error_type or 'unknown'}")
            self._cv.notify_all()
            return 202, "", ""
