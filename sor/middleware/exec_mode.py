"""Exec mode: a process per hook call, `PATH HOOK`, the payload on stdin, the answer on stdout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sor.config.model import Middleware
from sor.logs import Log
from sor.middleware.hook import (
    ANSWERING_HOOKS,
    MAX_OUTPUT,
    RESPOND_STATUS,
    UNCHANGED,
    HookResult,
    answer_from_after,
    ended,
    failure,
    hook_env,
    timeout_error,
    visible_env,
)
from sor.payload import decode, encode
from sor.process import exchange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook


class ExecHooks:
    """Exec mode: ``PATH HOOK`` with the payload on stdin, the new payload on stdout."""

    def __init__(self, mw: Middleware, *, log: Log, env: Mapping[str, str]) -> None:
        self.mw = mw
        self.log = log
        self.env = visible_env(env, mw.env)  # middlewares[].env

    def start(self) -> None:
        """Nothing to start: every call is its own process."""

    def close(self) -> None:
        """Nothing to stop: ``exchange.run`` leaves nothing behind."""

    def call(
        self,
        hook: Hook,
        payload: Any,
        context: Mapping[str, Any],
        timeout: float,
        *,
        stream: bool = False,
    ) -> HookResult:
        """The hook's answer; raises ``MiddlewareError``/``MiddlewareTimeout`` naming it."""
        if timeout <= 0:
            raise timeout_error(self.mw, hook, timeout)
        try:
            data = encode(payload)
            env = hook_env(self.env, hook, context, stream=stream)
        except (ValueError, TypeError, RecursionError) as exc:
            raise failure(self.mw, hook, f"cannot be given its input: {exc}") from None
        try:
            done = exchange.run(
                [str(self.mw.path), hook],
                env=env,
                input=data,
                timeout=timeout,
                max_output=MAX_OUTPUT,
                on_stderr_line=lambda line: self.log.child_line(self.mw.name, line),
            )
        except (OSError, ValueError) as exc:
            raise failure(self.mw, hook, str(exc)) from None
        if done.timed_out:
            raise timeout_error(self.mw, hook, timeout, done.stderr_tail)
        if done.overflow:
            raise failure(self.mw, hook, f"wrote more than {MAX_OUTPUT} bytes", done.stderr_tail)
        code = done.returncode
        if code == RESPOND_STATUS and hook not in ANSWERING_HOOKS:
            what = answer_from_after(f"{ended(code)} (answer now)", hook)
            raise failure(self.mw, hook, what, done.stderr_tail)
        if code not in (0, RESPOND_STATUS):
            raise failure(self.mw, hook, ended(code), done.stderr_tail)
        text = done.stdout.rstrip(b"\r\n")
        if not text.strip():
            value, empty = payload, True
        else:
            try:
                value, empty = decode(text), False
            except ValueError as exc:
                raise failure(
                    self.mw, hook, f"wrote output that is not JSON ({exc})", done.stderr_tail
                ) from None
        if code == RESPOND_STATUS:
            return HookResult("respond", value)
        return UNCHANGED if empty else HookResult("replace", value)
