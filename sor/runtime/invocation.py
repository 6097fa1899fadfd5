"""One invocation: from the event `GET next` delivered to its answer, posted once, and its log line.

The flow: the event (passed on as the bytes Lambda sent, unless sor must look inside) ->
`_debugProxy` (sor.runtime.debug) -> CloudEvents (sor.events, one pipeline run per record) ->
the middleware pipeline around the language runtime -> an `Answer` value, which
`sor.runtime.answer.post` sends. Deadlines are `sor.runtime.context`'s.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping

from sor.config.model import Config
from sor.errors import InvocationTimeout, SorError
from sor.logs import Log
from sor.payload import RawJson
from sor.runtime.answer import Answer, Response, Stream, failure, post, unexpected
from sor.runtime.api import Invocation, RuntimeApiClient
from sor.runtime.context import (
    MAX_GRACE_SHARE,
    build_context,
    clamped_grace,
    deadlines,
    function_timeout,
    runtime_error,
)
from sor.runtime.language import LanguageRuntime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:  # imported only by functions that have middlewares (or shared runtimes)
    from sor.middleware.pipeline import Pipeline
    from sor.runtime.shared import SharedRuntime

_DEBUG_MARK = b'"_debugProxy"'
# Lambda's Python runtimes up to 3.11 (and every provided.* runtime) escape non-ASCII in JSON.
_UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 20))


def parse_event(body: bytes) -> Any:
    """The event as JSON data; Runtime.UnmarshalError (as Lambda names it) when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else e
        raise runtime_error("Runtime.UnmarshalError", f"Unable to unmarshal input: {why}") from None


def encode_response(value: Any, env: Mapping[str, str]) -> bytes:
    """A response sor decoded, serialised as Lambda's Python runtime serialises it."""
    ascii_only = env.get("AWS_EXECUTION_ENV") not in _UNESCAPED_ENVS
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError) as e:
        raise runtime_error("Runtime.MarshalError", f"Unable to marshal response: {e}") from None


class Invoker:
    """Answers invocations: one `handle` call per invocation, one answer, one log line."""

    def __init__(
        self,
        config: Config,
        language: LanguageRuntime | SharedRuntime,
        api: RuntimeApiClient,
        *,
        log: Log,
        env: Mapping[str, str],
        pipeline: Pipeline | None = None,
    ) -> None:
        self.config = config
        self.language = language
        self.api = api
        self.log = log
        self.env = env
        self.pipeline = pipeline
        self._timeout = function_timeout(env, log)
        self._grace_told = False
        if self._timeout is not None:  # known at init (RIE, sor local): told at init
            self._tell_grace(clamped_grace(config.timeouts.grace, self._timeout), self._timeout)

    def handle(self, inv: Invocation) -> str:
        """Answer ``inv``; the outcome (``success`` or the posted errorType)."""
        began = time.monotonic()
        timings: dict[str, float] = {}
        try:
            answer = self._answer(inv, timings)
        except Exception as exc:  # a bug of sor: still exactly one answer
            answer = unexpected(exc)
        posted = time.monotonic()
        outcome, extra = post(self.api, inv.request_id, answer)
        timings["post"] = time.monotonic() - posted
        self._log_line(inv, outcome, timings, began, **extra)
        return outcome

    def _answer(self, inv: Invocation, timings: dict[str, float]) -> Answer:
        try:
            return self._response(inv, timings)
        except SorError as exc:
            return failure(exc)

    def _response(self, inv: Invocation, timings: dict[str, float]) -> Response | Stream:
        began = time.monotonic()
        d = deadlines(
            inv.deadline_ms,
            self.config.timeouts.grace,
            now_epoch=time.time(),
            now_mono=began,
            function_timeout=self._timeout,
        )
        self._tell_grace(d.grace, d.function_timeout)
        context = build_context(inv, self.env, d.soft_epoch_ms)
        # sor decodes only what it must look inside; the rest goes on as Lambda sent it.
        looks = self.pipeline is not None or self.config.runtime.signature == "cloudevent"
        event: Any = RawJson(inv.event)
        debug = None
        if looks or _DEBUG_MARK in inv.event:
            event = parse_event(inv.event)
            if isinstance(event, dict) and "_debugProxy" in event:
                debug = self._debug(event, inv.request_id)
        timings["parse"] = time.monotonic() - began

        def handler(payload: Any) -> RawJson | Stream:
            return self.language.invoke(
                payload, context, d.soft, debug, function_timeout=d.function_timeout
            )

        if not looks:
            handled = time.monotonic()
            try:
                result = handler(event)
                if isinstance(result, Stream):
                    return result
                return Response(result.text)  # the bytes the runtime wrote
            finally:
                timings["handler"] = time.monotonic() - handled

        def run(payload: Any) -> Any:
            # Each record of a batch has its phases: the log line shows their sums.
            own: dict[str, float] = {}

            def decoded(value: Any) -> Any:
                result = handler(value)
                if isinstance(result, Stream):
                    if self.config.runtime.signature == "cloudevent":
                        result.chunks.close()  # its source is abandoned: restarted
                        raise runtime_error(
                            "Sor.StreamNotSupported",
                            "the cloudevent signature answers a batch with one value per record:"
                            " a handler cannot stream its answer to a record",
                        )
                    return result  # the pipeline's after hooks get its metadata
                try:
                    return result.value()
                except ValueError as e:
                    why = f"Unable to read result: {e}"
                    raise runtime_error("Runtime.MarshalError", why) from None

            handled = time.monotonic()
            try:
                if self.pipeline is None:
                    return decoded(payload)
                return self.pipeline.run(payload, context, decoded, d.soft, d.hard, own)
            finally:
                if self.pipeline is None:
                    own["handler"] = time.monotonic() - handled
                for phase, secs in own.items():
                    timings[phase] = timings.get(phase, 0.0) + secs

        if self.config.runtime.signature == "cloudevent":
            result = self._per_record(event, run, inv.request_id, d.soft)
        else:
            result = run(event)
            if isinstance(result, Stream):
                return result
        encoded = time.monotonic()
        body = encode_response(result, self.env)
        timings["encode"] = time.monotonic() - encoded
        return Response(body)

    def _tell_grace(self, grace: float, timeout: float | None) -> None:
        """Say once that the configured grace was clamped to ``grace`` (docs/runtime.md)."""
        configured = self.config.timeouts.grace
        if self._grace_told or grace >= configured or timeout is None:
            return
        self._grace_told = True
        self.log.warning(
            f"timeouts.grace {configured:g}s would leave the handler too little of the "
            f"function's {timeout:g}s timeout: sor answers {grace:g}s before Lambda's deadline "
            f"instead (at most {MAX_GRACE_SHARE:.0%} of the timeout)"
        )

    def _debug(self, event: dict[str, Any], request_id: str) -> Mapping[str, Any] | None:
        from sor.runtime import debug  # only events that carry `_debugProxy` pay for the policy

        target = debug.extract(event, self.config.debug, self.log, request_id)
        return target.as_dict() if target is not None else None

    def _per_record(
        self, event: Any, run: Callable[[Any], Any], request_id: str, soft: float
    ) -> Any:
        # Only the cloudevent signature pays for the mapping.
        from sor.errors import EventMappingError
        from sor.events.batch import answer, stops_here, to_batch
        from sor.events.model import Outcome

        settings = self.config.cloudevents
        try:
            batch = to_batch(event, settings, request_id=request_id)
        except EventMappingError as exc:
            from sor.events.problem import malformed_response

            response = malformed_response(event, exc, settings)  # None: the invocation fails
            if response is None:
                raise
            self.log.warning(f"answered HTTP 400: {exc.message}", request_id)
            return response
        outcomes: list[Outcome] = []
        for i, record in enumerate(batch.records):
            if stops_here(batch, outcomes):
                break  # SQS FIFO: nothing runs after a failure; answer() reports the rest
            if batch.partial and time.monotonic() >= soft:
                # Past the graceful-timeout point: running the rest would only restart the
                # runtime for each record. They are reported as failed, so Lambda retries them.
                late = InvocationTimeout(
                    f"record {i} was not run: the invocation reached its graceful timeout"
                ).payload()
                outcomes.append(Outcome(ok=False, error=late))
                continue
            try:
                outcomes.append(Outcome(ok=True, value=run(record.event)))
            except SorError as exc:
                if not batch.partial:
                    raise  # one failed record fails the whole batch: no need to run the rest
                outcomes.append(Outcome(ok=False, error=exc.payload()))
        return answer(batch, outcomes, settings)

    def _log_line(
        self,
        inv: Invocation,
        outcome: str,
        timings: dict[str, float],
        began: float,
        **extra: Any,
    ) -> None:
        phases = {f"{name}_ms": round(secs * 1000, 2) for name, secs in timings.items()}
        # The invocation is answered: its log line is best effort, never a reason to answer again.
        with contextlib.suppress(Exception):
            self.log.write(
                "INFO",
                "invocation",
                inv.request_id,
                outcome=outcome,
                duration_ms=round((time.monotonic() - began) * 1000, 2),
                **phases,
                **extra,
            )
