"""What sor does when the execution environment shuts down (SPEC "Logs and the platform").

Only when configured (`shutdown.signal: true`, or a middleware with the `shutdown` hook): at init
sor registers as an internal extension (sor.runtime.extension), so that Lambda sends it SIGTERM
at shutdown and gives it about 500 ms. Then, in that time: the `shutdown` hooks (all at once,
each within the same deadline), SIGTERM to the language runtime and a wait for it to exit.
Functions without either setting never import this module: no registration, no thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sor.logs import Log
from sor.runtime.extension import Extension, ExtensionError

if TYPE_CHECKING:
    from sor.middleware.pipeline import Pipeline
    from sor.runtime.language import LanguageRuntime
    from sor.runtime.shared import SharedRuntime

SHUTDOWN_TIME = 0.5  # what Lambda gives a runtime with an internal extension, from its SIGTERM
EXIT_MARGIN = 0.05  # kept for sor's own exit once the language runtime has gone
RUNTIME_SHARE = 0.15  # the least the language runtime gets after the hooks, to clean up


def deadlines(signalled_at: float) -> tuple[float, float]:
    """(end of the hooks, end of the language runtime) as ``time.monotonic()`` values for a
    SIGTERM received at ``signalled_at``; both inside Lambda's time."""
    end = signalled_at + SHUTDOWN_TIME - EXIT_MARGIN
    return end - RUNTIME_SHARE, end


def epoch_ms(deadline: float) -> int:
    """A ``time.monotonic()`` deadline as epoch milliseconds, as `deadline_ms` is everywhere."""
    return int((time.time() + deadline - time.monotonic()) * 1000)


class Shutdown:
    """The shutdown of one `sor run`: registration at init, the hooks and the runtime at SIGTERM."""

    def __init__(self, address: str, *, log: Log, env: Mapping[str, str]) -> None:
        self.extension = Extension(address)
        self.log = log
        self.env = env
        self.registered = False
        self._ending = False  # once shutting down, the end of `event/next` is expected

    def register(self) -> None:
        """Register before the first `invocation/next`; a refusal is logged, never fatal (the
        function still serves, only without SIGTERM at shutdown)."""
        try:
            self.extension.register()
        except ExtensionError as exc:
            self.log.warning(f"{exc.message}; Lambda will not send SIGTERM at shutdown")
            return
        self.registered = True
        self.extension.keep_waiting(self._lost)

    def _lost(self, why: str) -> None:
        if not self._ending:
            self.log.warning(f"the Extensions API ended sor's registration: {why}")

    def run(
        self,
        pipeline: Pipeline | None,
        signalled_at: float,
        runtimes: Sequence[LanguageRuntime | SharedRuntime],
    ) -> None:
        """Run the `shutdown` hooks, then stop ``runtimes`` (SIGTERM, all at once) within the
        rest of Lambda's time; stopped, they stay stopped (a second `stop` does nothing)."""
        self._ending = True
        hooks_end, runtime_end = deadlines(signalled_at)
        if pipeline is not None:
            deadline_ms = epoch_ms(hooks_end)
            context: dict[str, Any] = {
                "aws_request_id": "",
                "deadline_ms": deadline_ms,
                "function_name": self.env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            }
            pipeline.shutdown(context, hooks_end)
        grace = max(runtime_end - time.monotonic(), 0.0)
        if len(runtimes) == 1:
            runtimes[0].stop(grace=grace)
            return
        threads = [
            threading.Thread(target=r.stop, kwargs={"grace": grace}, name="sor-stop", daemon=True)
            for r in runtimes
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(grace + 1.0)  # a stop kills its group once the grace is over
