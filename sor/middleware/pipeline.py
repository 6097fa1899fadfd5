"""The middleware onion: which hook runs when, early answers, errors, and ``on_error``.

The order is decided by ``onion``, a pure function over a ``call`` callback, so it can be tested
without processes. ``Pipeline`` binds it to the runners of ``sor.middleware``, the deadlines, the
log and the timings.

The model (docs/middlewares.md): middlewares are layers around the handler, the first declared is
the outermost. The invocation goes in through the ``before`` hooks in declared order until the
handler or an early answer, then comes out through the layers it passed, innermost first. On the
way out the state is either a response (each layer's ``after`` hook sees it) or an error (each
layer's ``error`` hook sees it). A layer whose hook produced the state (an early answer or a
failure) is not called again; the layers outside it are. An ``error`` hook that answers turns the
error into a response, so the layers further out run their ``after`` hooks on it; an ``after``
hook that fails turns the response into an error, so the layers further out run their ``error``
hooks on it.

A streamed answer (``sor.runtime.answer.Stream``) goes out the same way: each ``after`` hook
gets its metadata (``{"contentType": ...}`` or the HTTP prelude, flagged as a stream) and may
change it, never the body. An error after its first byte runs the ``error`` hooks of every layer,
innermost first, when `post` meets it: each may replace the ERROR of the trailers; none can
answer any more (docs/middlewares.md, "Streamed answers").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from sor.config.model import Middleware
from sor.errors import MiddlewareError, SorError, error_from_payload
from sor.logs import Log
from sor.middleware.exec_mode import ExecHooks
from sor.middleware.hook import HookResult, Hooks
from sor.middleware.persistent_mode import PersistentHooks
from sor.runtime.answer import Stream, started

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook

    # Runs hook HOOK of middleware number I on a payload; raises MiddlewareError on failure.
    Call = Callable[[int, Hook, Any], HookResult]
    # Told about a failure that `on_error: continue` ignores.
    Tolerated = Callable[[Middleware, Hook, MiddlewareError], None]


def onion(
    middlewares: Sequence[Middleware],
    payload: Any,
    handler: Callable[[Any], Any],
    call: Call,
    tolerated: Tolerated,
) -> Any:
    """Run the hooks of ``middlewares`` around ``handler``; the response, or raises the error."""
    result: Any = None
    error: SorError | None = None
    start = len(middlewares)  # the way out begins just outside this layer
    for i, mw in enumerate(middlewares):
        if "before" not in mw.hooks:
            continue
        try:
            answer = call(i, "before", payload)
        except MiddlewareError as exc:
            if mw.on_error == "continue":
                tolerated(mw, "before", exc)
                continue
            start, error = i, exc
            break
        if answer.kind == "respond":
            start, result = i, answer.payload
            break
        if answer.kind == "replace":
            payload = answer.payload
    else:
        try:
            result = handler(payload)
        except SorError as exc:
            error = exc
    for i in range(start - 1, -1, -1):
        result, error = _way_out(middlewares[i], i, result, error, call, tolerated)
    if error is not None:
        raise error
    return result


def _way_out(
    mw: Middleware,
    index: int,
    result: Any,
    error: SorError | None,
    call: Call,
    tolerated: Tolerated,
) -> tuple[Any, SorError | None]:
    """One layer on the way out: its ``after`` hook for a response, ``error`` hook for an error."""
    hook: Hook = "after" if error is None else "error"
    if hook not in mw.hooks:
        return result, error
    try:
        answer = call(index, hook, result if error is None else error.payload())
    except MiddlewareError as exc:
        if mw.on_error == "continue":
            tolerated(mw, hook, exc)
            return result, error
        if error is not None:  # keep what the failing hook was handling in sight
            first = error.payload()
            exc = type(exc)(
                f"{exc.message} (while handling {first.get('errorType')}: "
                f"{first.get('errorMessage')})",
                stack_trace=exc.stack_trace,
            )
        return None, exc
    if answer.kind == "unchanged":
        return result, error
    if error is None or answer.kind == "respond":
        return answer.payload, None
    return None, error_from_payload(answer.payload)


def hooks_for(mw: Middleware, *, log: Log, env: Mapping[str, str]) -> Hooks:
    """The hooks of ``mw`` in its mode: a process per call, or one persistent process."""
    if mw.mode == "persistent":
        return PersistentHooks(mw, log=log, env=env)
    return ExecHooks(mw, log=log, env=env)


class Pipeline:
    """The middlewares of a function, started once and run around every invocation."""

    def __init__(
        self, middlewares: Sequence[Middleware], *, log: Log, env: Mapping[str, str]
    ) -> None:
        self.middlewares = tuple(middlewares)
        self.log = log
        self.runners: tuple[Hooks, ...] = tuple(
            hooks_for(mw, log=log, env=env) for mw in self.middlewares
        )

    def start(self) -> None:
        """Start the persistent middlewares; ``MiddlewareError`` naming one that cannot start."""
        for runner in self.runners:
            runner.start()

    def close(self) -> None:
        """Stop the persistent middlewares and everything they started."""
        for runner in self.runners:
            runner.close()

    def shutdown(self, context: Mapping[str, Any], deadline: float) -> None:
        """Run every ``shutdown`` hook once, all at once, each within ``deadline``.

        At once, not in order: Lambda's few hundred milliseconds cannot be shared out. Each gets
        ``{"deadline_ms": N}`` (from ``context``); its output is ignored, its failure logged.
        """

        def one(index: int) -> None:
            runner = self.runners[index]
            payload = {"deadline_ms": context.get("deadline_ms")}
            try:
                runner.call("shutdown", payload, context, deadline - time.monotonic())
            except MiddlewareError as exc:
                self.log.warning(exc.message, errorType=exc.error_type)

        threads = [
            threading.Thread(target=one, args=(i,), name=f"sor-shutdown-{mw.name}", daemon=True)
            for i, mw in enumerate(self.middlewares)
            if "shutdown" in mw.hooks
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            # A hook's own timeout ends it at the deadline; the margin is for its clean-up.
            thread.join(max(deadline - time.monotonic(), 0.0) + 0.05)

    def run(
        self,
        payload: Any,
        context: dict[str, Any],
        handler: Callable[[Any], Any],
        deadline: float,
        error_deadline: float,
        timings: dict[str, float],
    ) -> Any:
        """The response to one invocation, or raises the ``SorError`` to report.

        ``before``/``after`` hooks get at most the time left before ``deadline``, ``error`` hooks
        the time left before ``error_deadline``; ``timings`` receives ``HOOK:NAME`` and
        ``handler`` durations in seconds.
        """
        request_id = str(context.get("aws_request_id", ""))

        produced: list[Stream] = []  # what the handler streamed, closed if it is not answered

        def call(index: int, hook: Hook, value: Any, stream: bool = False) -> HookResult:
            mw = self.middlewares[index]
            limit = error_deadline if hook == "error" else deadline
            began = time.monotonic()
            timeout = min(mw.timeouts.of(hook), limit - began)
            opened = value if isinstance(value, Stream) else None
            if opened is not None:
                value, stream = opened.metadata(), True
            try:
                answer = self.runners[index].call(hook, value, context, timeout, stream=stream)
            finally:
                timings[f"{hook}:{mw.name}"] = time.monotonic() - began
            if opened is None or answer.kind != "replace":
                return answer
            try:
                return HookResult("replace", opened.with_metadata(answer.payload))
            except ValueError as exc:
                raise MiddlewareError(f"middleware {mw.name} ({hook}): {exc}") from None

        def timed_handler(value: Any) -> Any:
            began = time.monotonic()
            try:
                result = handler(value)
                if isinstance(result, Stream):
                    produced.append(result)
                return result
            finally:
                timings["handler"] = time.monotonic() - began

        def tolerated(mw: Middleware, hook: Hook, exc: MiddlewareError) -> None:
            self.log.warning(
                f"{exc.message} (on_error: continue, the payload is kept)",
                request_id,
                errorType=exc.error_type,
            )

        try:
            result = onion(self.middlewares, payload, timed_handler, call, tolerated)
        except BaseException:
            for stream in produced:
                stream.chunks.close()  # never answered: its source is abandoned
            raise
        if not isinstance(result, Stream):
            for stream in produced:
                stream.chunks.close()
            return result

        def after_first_byte(error: SorError) -> SorError:
            def streamed(index: int, hook: Hook, value: Any) -> HookResult:
                return call(index, hook, value, True)

            for i in range(len(self.middlewares) - 1, -1, -1):
                _, replaced = _way_out(self.middlewares[i], i, None, error, streamed, tolerated)
                if replaced is None:  # an answer: too late once the stream began
                    self.log.warning(
                        f"middleware {self.middlewares[i].name} (error) answered after the "
                        "stream's first byte: only its ERROR can change; the ERROR is kept",
                        request_id,
                    )
                    continue
                error = replaced
            return error

        guarded = started(_guarded(result.chunks, after_first_byte))
        return Stream(result.content_type, result.prelude, guarded)


def _guarded(
    chunks: Generator[bytes, None, None], on_error: Callable[[SorError], SorError]
) -> Generator[bytes, None, None]:
    """``chunks``, an error among them first handed to ``on_error`` (the error hooks)."""
    try:
        yield b""  # `started`
        yield from chunks
    except SorError as exc:
        raise on_error(exc) from None
    finally:
        chunks.close()  # closed before its end: the inner body's cleanup runs too
