"""One invocation, from the Runtime API's event to exactly one answer and one log line.

The flow: parse the event -> `_debugProxy` (sor.runtime.debug) -> CloudEvents (sor.events, one
pipeline run per record) -> the middleware pipeline around the language runtime -> post the response
or the error. Deadlines: the handler and the `before`/`after` hooks must finish by the *soft*
deadline (Lambda's deadline less `timeouts.grace`); `error` hooks by the *hard* deadline (Lambda's
deadline less a margin to post the answer).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sor.config.model import Config
from sor.errors import FunctionError, InvocationTimeout, SorError
from sor.logs import Log
from sor.runtime.api import Invocation, RuntimeApiClient, error_body
from sor.runtime.language import LAMBDA_MAX_RESPONSE, TOO_LARGE_ERROR, LanguageRuntime

if TYPE_CHECKING:  # imported only by functions that have middlewares
    from sor.middleware.pipeline import Pipeline

POST_MARGIN = 0.05  # seconds kept after the hard deadline to post the answer
# Lambda's Python runtimes up to 3.11 (and every provided.* runtime) escape non-ASCII in JSON.
_UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 20))


@dataclass(frozen=True)
class Deadlines:
    """Monotonic deadlines of one invocation, and the function's timeout when known."""

    lambda_: float
    soft: float
    hard: float
    soft_epoch_ms: int
    function_timeout: float | None


def deadlines(
    deadline_ms: int,
    grace: float,
    *,
    now_epoch: float,
    now_mono: float,
    function_timeout: float | None = None,
) -> Deadlines:
    """Convert Lambda-Runtime-Deadline-Ms (epoch ms) to the monotonic deadlines sor works to."""
    lambda_ = now_mono + (deadline_ms / 1000.0 - now_epoch)
    soft = lambda_ - grace
    hard = max(soft, lambda_ - POST_MARGIN)
    if function_timeout is None:
        # Lambda does not say. Its timeouts are whole seconds and an invocation arrives a few
        # milliseconds after its deadline was set: the time left, rounded up, is the timeout.
        left = deadline_ms / 1000.0 - now_epoch
        function_timeout = float(math.ceil(left - 0.05)) if left > 0.05 else None
    return Deadlines(lambda_, soft, hard, int(deadline_ms - grace * 1000), function_timeout)


def build_context(inv: Invocation, env: Mapping[str, str], soft_epoch_ms: int) -> dict[str, Any]:
    """The protocol's CONTEXT for ``inv``; FunctionError for unparsable context headers."""
    return {
        "aws_request_id": inv.request_id,
        # What handlers see as the time left is the time until sor stops them.
        "deadline_ms": soft_epoch_ms,
        "lambda_deadline_ms": inv.deadline_ms,
        "invoked_function_arn": inv.invoked_function_arn,
        "function_name": env.get("AWS_LAMBDA_FUNCTION_NAME"),
        "function_version": env.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "memory_limit_in_mb": env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "log_group_name": env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
        "log_stream_name": env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "trace_id": inv.trace_id,
        "client_context": _json_header(inv.client_context, "Client Context"),
        "identity": _json_header(inv.cognito_identity, "Cognito Identity"),
        "tenant_id": inv.tenant_id,
    }


def _json_header(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise _runtime_error(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {e}"
        ) from None


def parse_event(body: bytes) -> Any:
    """The event as JSON data; Runtime.UnmarshalError (as Lambda names it) when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError as e:
        raise _runtime_error("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}") from None


def _runtime_error(error_type: str, message: str) -> FunctionError:
    """An error Lambda itself names (``Runtime.*``), with no stack of the handler's."""
    return FunctionError({"errorType": error_type, "errorMessage": message, "stackTrace": []})


def encode_response(value: Any, env: Mapping[str, str]) -> bytes:
    """The response body, serialised as Lambda's Python runtime serialises it."""
    ascii_only = env.get("AWS_EXECUTION_ENV") not in _UNESCAPED_ENVS
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def function_timeout(env: Mapping[str, str], log: Log) -> float | None:
    """AWS_LAMBDA_FUNCTION_TIMEOUT (set by RIE and `sor local`; Lambda does not say) in seconds.

    A value that is not a finite positive number is ignored with a warning.
    """
    text = env.get("AWS_LAMBDA_FUNCTION_TIMEOUT")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value
    log.warning(f"AWS_LAMBDA_FUNCTION_TIMEOUT={text!r} ignored: not a positive number of seconds")
    return None


class Invoker:
    """Answers invocations: one `handle` call per invocation, one answer, one log line."""

    def __init__(
        self,
        config: Config,
        language: LanguageRuntime,
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
        self.answered: str | None = None  # the request id of the last invocation answered
        self._timeout = function_timeout(env, log)

    def handle(self, inv: Invocation) -> str:
        """Answer ``inv``; the outcome (``success`` or the posted errorType)."""
        began = time.monotonic()
        timings: dict[str, float] = {}
        try:
            body = self._response(inv, timings)
        except SorError as exc:
            xray = exc.xray if isinstance(exc, FunctionError) else None
            return self._answer_error(inv, exc.payload(), timings, began, xray)
        except Exception as exc:  # a bug of sor: still exactly one answer
            error = {
                "errorType": "Sor.Error",
                "errorMessage": f"sor failed unexpectedly: {type(exc).__name__}: {exc}",
                "stackTrace": [],
            }
            return self._answer_error(inv, error, timings, began)
        posted = time.monotonic()
        # Lambda refuses a body over its limit; some servers answer 413 and hang up before
        # reading it, so it is never sent: the error Lambda would report is posted instead.
        too_large = len(body) > LAMBDA_MAX_RESPONSE
        status = 413 if too_large else self.api.respond(inv.request_id, body)
        if status == 413:
            # Too large (known here or refused by the API, which still awaits an answer).
            status = self.api.fail(inv.request_id, dict(TOO_LARGE_ERROR))
            self.answered = inv.request_id
            timings["post"] = time.monotonic() - posted
            outcome = str(TOO_LARGE_ERROR["errorType"])
            if status >= 300:
                outcome += f" (error rejected, HTTP {status})"
            self._log_line(inv, outcome, timings, began, size=len(body))
            return outcome
        self.answered = inv.request_id
        timings["post"] = time.monotonic() - posted
        outcome = "success" if status < 300 else f"response rejected (HTTP {status})"
        self._log_line(inv, outcome, timings, began, size=len(body))
        return outcome

    def _response(self, inv: Invocation, timings: dict[str, float]) -> bytes:
        began = time.monotonic()
        d = deadlines(
            inv.deadline_ms,
            self.config.timeouts.grace,
            now_epoch=time.time(),
            now_mono=began,
            function_timeout=self._timeout,
        )
        context = build_context(inv, self.env, d.soft_epoch_ms)
        event = parse_event(inv.event)
        debug = None
        if isinstance(event, dict) and "_debugProxy" in event:
            debug = self._debug(event, inv.request_id)
        timings["parse"] = time.monotonic() - began

        def handler(payload: Any) -> Any:
            return self.language.invoke(
                payload, context, d.soft, debug, function_timeout=d.function_timeout
            )

        def run(payload: Any) -> Any:
            # Each record of a batch has its phases: the log line shows their sums.
            own: dict[str, float] = {}
            handled = time.monotonic()
            try:
                if self.pipeline is None:
                    return handler(payload)
                return self.pipeline.run(payload, context, handler, d.soft, d.hard, own)
            finally:
                if self.pipeline is None:
                    own["handler"] = time.monotonic() - handled
                for phase, secs in own.items():
                    timings[phase] = timings.get(phase, 0.0) + secs

        if self.config.runtime.signature == "cloudevent":
            result = self._per_record(event, run, inv.request_id, d.soft)
        else:
            result = run(event)
        encoded = time.monotonic()
        body = encode_response(result, self.env)
        timings["encode"] = time.monotonic() - encoded
        return body

    def _debug(self, event: dict[str, Any], request_id: str) -> Mapping[str, Any] | None:
        from sor.runtime import debug  # only events that carry `_debugProxy` pay for the policy

        target = debug.extract(event, self.config.debug, self.log, request_id)
        return target.as_dict() if target is not None else None

    def _per_record(
        self, event: Any, run: Callable[[Any], Any], request_id: str, soft: float
    ) -> Any:
        # Only the cloudevent signature pays for the mapping.
        from sor.events.batch import answer, to_batch
        from sor.events.model import Outcome

        settings = self.config.cloudevents
        batch = to_batch(event, settings, request_id=request_id)
        outcomes = []
        for i, record in enumerate(batch.records):
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

    def _answer_error(
        self,
        inv: Invocation,
        error: dict[str, Any],
        timings: dict[str, float],
        began: float,
        xray: dict[str, Any] | None = None,
    ) -> str:
        posted = time.monotonic()
        if len(error_body(error, inv.request_id)) > LAMBDA_MAX_RESPONSE:
            error, xray = dict(TOO_LARGE_ERROR), None  # bounded as a response is
        self.api.fail(inv.request_id, error, xray)
        self.answered = inv.request_id
        timings["post"] = time.monotonic() - posted
        outcome = str(error.get("errorType") or "error")
        self._log_line(inv, outcome, timings, began)
        return outcome

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
            self.log.info(
                "invocation",
                inv.request_id,
                outcome=outcome,
                duration_ms=round((time.monotonic() - began) * 1000, 2),
                **phases,
                **extra,
            )
