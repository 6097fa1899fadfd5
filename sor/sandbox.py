"""The emulated Lambda sandbox: one bootstrap process and one invocation at a time.

The state here is what the Runtime API server (in ``sor.emulator``) and the invoke callers share:
the current bootstrap process, the invocation in flight, and its answer. Callers of
``invoke`` are queued; each gets exactly one ``InvokeResult``, whatever the bootstrap does (answer,
fail, time out, die, never start). A bootstrap that times out or dies is killed with everything it
started and is started again for the next invocation, as Lambda resets a sandbox.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sor import process
from sor.invoke_result import (
    InvokeResult,
    error_body,
    exit_answer,
    exit_reason,
    function_error_answer,
    init_error_answer,
    spawn_error_answer,
    success_answer,
    timeout_answer,
    too_large_answer,
)
from sor.logs import Log

MAX_PAYLOAD = 6 * 1024 * 1024 + 100  # Lambda's synchronous limit, as the Runtime API enforces it
_STOP_GRACE = 2.0  # how long a stopping bootstrap may take to end its own children after SIGTERM


@dataclass
class Invocation:
    """One invocation handed (or to be handed) to the bootstrap."""

    request_id: str
    payload: bytes
    deadline: float  # time.monotonic()
    deadline_ms: int  # epoch milliseconds, for Lambda-Runtime-Deadline-Ms
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    delivered: bool = False
    answer: InvokeResult | None = None


@dataclass
class _Bootstrap:
    """A started bootstrap; ``code`` is set by its watcher once it has ended and been reaped."""

    child: process.Child
    pump: process.LogPump
    code: int | None = None
    ended: bool = False
    initialized: bool = False
    init_error: bytes | None = None
    descendants: set[int] = field(default_factory=set)


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
        self._cv = threading.Condition()
        self._tickets = 0  # invocations run one at a time, first come first served
        self._turn = 0
        self._boot: _Bootstrap | None = None
        self._current: Invocation | None = None
        self._answered: collections.deque[str] = collections.deque(maxlen=16)
        self._stopping = False

    # -- the bootstrap -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the bootstrap now (init runs before the first invocation). Raises OSError."""
        with self._cv:
            self._spawn()

    def _spawn(self) -> None:
        """Start a new bootstrap; the caller holds ``_cv``."""
        read_fd, write_fd = process.make_pipe()
        try:
            child = process.spawn(
                self.argv,
                env={**self.env, "PWD": self.cwd},
                stdout=write_fd,
                stderr=write_fd,
                cwd=self.cwd,
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        pump = process.LogPump(read_fd, self.log.raw)  # the function's logs, as Lambda shows them
        pump.start()
        boot = _Bootstrap(child, pump)
        self._boot = boot
        threading.Thread(target=self._watch, args=(boot,), daemon=True, name="sor-watch").start()

    def _watch(self, boot: _Bootstrap) -> None:
        while not boot.child.exited():
            boot.child.wait_readable([], None)
        with self._cv:
            boot.code = boot.child.close()  # kills what is left of its group, then reaps it
            boot.ended = True
            self._cv.notify_all()

    def _kill(self, boot: _Bootstrap, graceful: bool) -> None:
        """End ``boot`` and everything it started; the caller holds ``_cv``."""
        if not boot.ended:
            boot.descendants |= _descendants(boot.child.pid)
        if not boot.ended and graceful:
            boot.child.kill_group(signal.SIGTERM)
            self._cv.wait_for(lambda: boot.ended, _STOP_GRACE)
        if not boot.ended:
            boot.descendants |= _descendants(boot.child.pid)
            boot.child.kill_group(signal.SIGKILL)
        for pid in boot.descendants:  # children that left the group (e.g. `sor run`'s runtime)
            _kill_pid(pid)
        self._cv.wait_for(lambda: boot.ended, 5.0)
        # SIGKILL is asynchronous: wait (briefly) until they are really gone, so that nothing of
        # this bootstrap still runs when the next one starts or the emulator has stopped.
        until = time.monotonic() + 1.0
        while any(map(_running, boot.descendants)) and time.monotonic() < until:
            self._cv.wait(0.01)
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

    # -- invoke side ---------------------------------------------------------------------------

    def invoke(
        self, payload: bytes, client_context: str | None = None, cognito_identity: str | None = None
    ) -> InvokeResult:
        """Run one invocation through the bootstrap; always returns exactly one answer."""
        with self._cv:
            ticket = self._tickets
            self._tickets += 1
            self._cv.wait_for(lambda: self._turn == ticket)
            try:
                return self._invoke(payload, client_context, cognito_identity)
            finally:
                self._turn += 1
                self._cv.notify_all()

    def _invoke(
        self, payload: bytes, client_context: str | None, cognito_identity: str | None
    ) -> InvokeResult:
        """One invocation, its turn come; the caller holds ``_cv``."""
        start = time.monotonic()
        request_id = str(uuid.uuid4())
        if self._stopping:
            return spawn_error_answer(request_id, "the emulator is stopping")
        if self._boot is not None and self._boot.ended:
            self._boot = None  # died between invocations: Lambda would start a new sandbox
        if self._boot is None:
            try:
                self._spawn()
            except OSError as exc:
                return spawn_error_answer(request_id, str(exc))
        assert self._boot is not None
        boot = self._boot
        inv = Invocation(
            request_id=request_id,
            payload=payload,
            deadline=start + self.timeout,
            deadline_ms=int((time.time() + self.timeout) * 1000),
            trace_id=trace_id(),
            client_context=client_context,
            cognito_identity=cognito_identity,
        )
        self._current = inv
        self.log.info(f"START RequestId: {request_id} Version: $LATEST")
        self._cv.notify_all()
        answer = self._await(inv, boot)
        self._current = None
        self._answered.append(request_id)  # so that a late post is told it is too late
        took = (time.monotonic() - start) * 1000
        self.log.info(f"END RequestId: {request_id}")
        self.log.info(f"REPORT RequestId: {request_id}\tDuration: {took:.2f} ms")
        return answer

    def _await(self, inv: Invocation, boot: _Bootstrap) -> InvokeResult:
        """Wait for the answer, the bootstrap's end, its init error, or the deadline."""
        while True:
            if inv.answer is not None:
                return inv.answer
            if self._stopping:
                return spawn_error_answer(inv.request_id, "the emulator was stopped")
            if boot.ended and boot.initialized and not inv.delivered:
                # It died after its last answer, before taking this invocation: as Lambda does,
                # run the invocation on a new sandbox rather than blame it for the old one.
                try:
                    self._spawn()
                except OSError as exc:
                    return spawn_error_answer(inv.request_id, str(exc))
                assert self._boot is not None
                boot = self._boot
                continue
            if boot.ended:
                if boot.init_error is not None and not inv.delivered:
                    return init_error_answer(boot.init_error)
                self.log.error(f"bootstrap exited: {exit_reason(boot.code)}", inv.request_id)
                return exit_answer(inv.request_id, exit_reason(boot.code))
            if boot.init_error is not None and not inv.delivered:
                self._kill(boot, graceful=False)
                return init_error_answer(boot.init_error)
            left = inv.deadline - time.monotonic()
            if left <= 0:
                self.log.error(f"Task timed out after {self.timeout:.2f} seconds", inv.request_id)
                self._kill(boot, graceful=False)
                return timeout_answer(self.timeout)
            self._cv.wait(left)

    # -- Runtime API side ----------------------------------------------------------------------

    def next_invocation(self, peer_gone: Callable[[], bool]) -> Invocation | None:
        """Block until there is an invocation for the bootstrap (None: the caller must hang up)."""
        with self._cv:
            boot = self._boot
            if boot is None:
                return None
            boot.initialized = True
            while not self._stopping and self._boot is boot and not boot.ended:
                inv = self._current
                if inv is not None and not inv.delivered and inv.answer is None:
                    if peer_gone():  # a connection left over from a killed bootstrap
                        return None
                    inv.delivered = True
                    return inv
                self._cv.wait(0.5)
                if peer_gone():
                    return None
            return None

    def return_invocation(self, inv: Invocation) -> None:
        """Hand ``inv`` out again: it could not be written to the bootstrap that asked for it."""
        with self._cv:
            if inv.answer is None:
                inv.delivered = False
                self._cv.notify_all()

    def _delivered(self, request_id: str) -> Invocation | tuple[int, str, str]:
        inv = self._current
        if inv is not None and inv.request_id == request_id and inv.answer is None:
            return inv
        if request_id in self._answered or (inv is not None and inv.request_id == request_id):
            return 403, "InvalidStateTransition", f"invocation {request_id} was already answered"
        return 400, "InvalidRequestID", f"no invocation {request_id} is in progress"

    def post_response(self, request_id: str, body: bytes) -> tuple[int, str, str]:
        """The bootstrap's response: (HTTP status, errorType, message) for the Runtime API."""
        with self._cv:
            inv = self._delivered(request_id)
            if isinstance(inv, tuple):
                return inv
            if len(body) > MAX_PAYLOAD:
                return self.response_too_large(request_id, len(body))
            inv.answer = success_answer(body)
            self._cv.notify_all()
            return 202, "", ""

    def response_too_large(self, request_id: str, size: int) -> tuple[int, str, str]:
        """Refuse a response over Lambda's limit; the invocation fails as Lambda fails it."""
        with self._cv:
            inv = self._delivered(request_id)
            if isinstance(inv, tuple):
                return inv
            inv.answer = too_large_answer(size, MAX_PAYLOAD)
            self._cv.notify_all()
            return (
                413,
                "RequestEntityTooLarge",
                (f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."),
            )

    def post_error(self, request_id: str, body: bytes, error_type: str) -> tuple[int, str, str]:
        """The bootstrap's invocation error (ERROR JSON)."""
        with self._cv:
            inv = self._delivered(request_id)
            if isinstance(inv, tuple):
                return inv
            inv.answer = function_error_answer(error_body(body, error_type))
            self._cv.notify_all()
            return 202, "", ""

    def post_init_error(self, body: bytes, error_type: str) -> tuple[int, str, str]:
        """The bootstrap could not initialise; refused once init is over, as Lambda does."""
        with self._cv:
            boot = self._boot
            if boot is None or boot.initialized or boot.init_error is not None:
                return 403, "InvalidStateTransition", "init/error is only accepted during init"
            boot.init_error = error_body(body, error_type)
            self.log.error(f"init error: {error_type or 'unknown'}")
            self._cv.notify_all()
            return 202, "", ""


def _descendants(root: int) -> set[int]:
    """Every live descendant of ``root``, found through /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] != b"Z"


def _kill_pid(pid: int) -> None:
    """SIGKILL ``pid`` and, when it leads a group other than ours, its group."""
    try:
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
