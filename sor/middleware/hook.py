"""What both middleware runners share: hook results, failures, and the wire format of a call.

A hook's outcome is a ``HookResult`` or a ``MiddlewareError`` / ``MiddlewareTimeout`` naming the
middleware and the hook. Pure logic only: the processes are in ``sor.middleware.exec_mode`` and
``sor.middleware.persistent_mode``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from sor.config.model import ALWAYS_VISIBLE, Middleware
from sor.errors import MiddlewareError, MiddlewareTimeout
from sor.process.spawn import describe_exit
from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook

MAX_OUTPUT = 8 << 20  # the most a hook may answer; Lambda's own limit on a response is 6 MB
RESPOND_STATUS = 100  # exit status of an exec hook that answers now
ANSWERING_HOOKS = ("before", "error")  # the hooks that may answer now (SPEC: not `after`)
_TAIL_IN_MESSAGE = 5

Kind = Literal["replace", "unchanged", "respond"]


@frozen
class HookResult:
    """What a hook asked for: replace the payload, leave it, or answer now with ``payload``."""

    kind: Kind
    payload: Any = None


UNCHANGED = HookResult("unchanged")


class Hooks(Protocol):
    """Runs the hooks of one middleware."""

    def start(self) -> None: ...

    def call(
        self,
        hook: Hook,
        payload: Any,
        context: Mapping[str, Any],
        timeout: float,
        *,
        stream: bool = False,
    ) -> HookResult:
        """The hook's answer; raises ``MiddlewareError``/``MiddlewareTimeout``. ``stream``: the
        answer is streamed (``payload`` is its metadata, or the error after its first byte)."""
        ...

    def close(self) -> None: ...


def failure(
    mw: Middleware,
    hook: str,
    what: str,
    tail: tuple[str, ...] | list[str] = (),
    kind: type[MiddlewareError] = MiddlewareError,
) -> MiddlewareError:
    """A ``MiddlewareError`` (or ``kind``) naming the middleware and hook, and its stderr tail."""
    message = f"middleware {mw.name} ({hook}): {what}"
    if tail:
        message += "; stderr: " + " | ".join(tail[-_TAIL_IN_MESSAGE:])
    return kind(message, stack_trace=list(tail))


def timeout_error(
    mw: Middleware, hook: str, timeout: float, tail: tuple[str, ...] | list[str] = ()
) -> MiddlewareError:
    """A ``MiddlewareTimeout`` naming the middleware and hook."""
    return failure(mw, hook, f"timed out after {max(timeout, 0.0):.3f}s", tail, MiddlewareTimeout)


def ended(code: int | None) -> str:
    """How a middleware process ended, for a message: ``ended with exit code 3``."""
    return f"ended with {describe_exit(code)}"


def answer_from_after(what: str, hook: str = "after") -> str:
    """The failure message of an ``after`` (or ``shutdown``) hook that tried to answer now."""
    return f"{what} from its {hook} hook; only before and error hooks may answer now"


def _env_value(name: str, value: Any) -> str:
    """``value`` as an environment value: None is empty; ValueError when it cannot be one."""
    text = "" if value is None else str(value)
    try:
        ok = b"\0" not in os.fsencode(text)
    except UnicodeEncodeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} cannot be an environment value: {text!r}")
    return text


def visible_env(env: Mapping[str, str], visible: tuple[str, ...] | None) -> dict[str, str]:
    """What a middleware sees of the function's environment (``middlewares[].env``): all of it
    (None), or the names in ``visible``, ALWAYS_VISIBLE and SOR_*."""
    if visible is None:
        return dict(env)
    keep = {*visible, *ALWAYS_VISIBLE}
    return {k: v for k, v in env.items() if k in keep or k.startswith("SOR_")}


def hook_env(
    env: Mapping[str, str], hook: str, context: Mapping[str, Any], *, stream: bool = False
) -> dict[str, str]:
    """The function's environment plus what the protocol promises an exec hook (SOR_STREAM=1
    when the answer is streamed).

    Raises ValueError when a context value cannot be put in an environment.
    """
    out = dict(env)
    out["SOR_HOOK"] = hook
    out["SOR_REQUEST_ID"] = _env_value("SOR_REQUEST_ID", context.get("aws_request_id"))
    out["SOR_DEADLINE_MS"] = _env_value("SOR_DEADLINE_MS", context.get("deadline_ms"))
    out["SOR_FUNCTION_NAME"] = _env_value("SOR_FUNCTION_NAME", context.get("function_name"))
    if stream:
        out["SOR_STREAM"] = "1"
    return out
