"""The time and the context of one invocation: its deadlines and the protocol's CONTEXT.

Deadlines: the handler and the `before`/`after` hooks must finish by the *soft* deadline
(Lambda's deadline less `timeouts.grace`); `error` hooks by the *hard* deadline (Lambda's
deadline less a margin to post the answer). A grace that would leave the handler little of the
function's time is clamped to `MAX_GRACE_SHARE` of it (docs/runtime.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from sor.errors import FunctionError
from sor.logs import Log
from sor.runtime.api import Invocation
from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

POST_MARGIN = 0.05  # seconds kept after the hard deadline to post the answer
MAX_GRACE_SHARE = 0.25  # the most of a function's timeout the grace may take


@frozen
class Deadlines:
    """Monotonic deadlines of one invocation, the function's timeout when known, and the grace
    in force (``timeouts.grace``, or less when that would leave the handler too little)."""

    lambda_: float
    soft: float
    hard: float
    soft_epoch_ms: int
    function_timeout: float | None
    grace: float


def deadlines(
    deadline_ms: int,
    grace: float,
    *,
    now_epoch: float,
    now_mono: float,
    function_timeout: float | None = None,
) -> Deadlines:
    """Convert Lambda-Runtime-Deadline-Ms (epoch ms) to the monotonic deadlines sor works to."""
    left = deadline_ms / 1000.0 - now_epoch
    if function_timeout is None:
        # Lambda does not say. Its timeouts are whole seconds and an invocation arrives a few
        # milliseconds after its deadline was set: the time left, rounded up, is the timeout.
        function_timeout = float(math.ceil(left - 0.05)) if left > 0.05 else None
    grace = clamped_grace(grace, function_timeout)
    lambda_ = now_mono + left
    soft = lambda_ - grace
    hard = max(soft, lambda_ - POST_MARGIN)
    soft_epoch_ms = int(deadline_ms - grace * 1000)
    d = Deadlines.__new__(Deadlines)
    # Every field at once, past the frozen __setattr__: the constructor's generic argument
    # handling would cost more than the rest of this function, at every invocation.
    d.__dict__.update(
        lambda_=lambda_,
        soft=soft,
        hard=hard,
        soft_epoch_ms=soft_epoch_ms,
        function_timeout=function_timeout,
        grace=grace,
    )
    return d


def clamped_grace(grace: float, function_timeout: float | None) -> float:
    """``grace``, at most MAX_GRACE_SHARE of ``function_timeout`` (when it is known)."""
    if function_timeout is None:
        return grace
    return min(grace, function_timeout * MAX_GRACE_SHARE)


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


def runtime_error(error_type: str, message: str) -> FunctionError:
    """An error Lambda itself names (``Runtime.*``), with no stack of the handler's."""
    return FunctionError({"errorType": error_type, "errorMessage": message, "stackTrace": []})


def _json_header(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as e:
        raise runtime_error(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {e}"
        ) from None


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
