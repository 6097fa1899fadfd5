"""Serving several invocations at once (Lambda Managed Instances, docs/concurrency.md).

When `AWS_LAMBDA_MAX_CONCURRENCY` is N > 1, `sor run` serves up to min(N,
`runtime.concurrency`) invocations at once. Each *slot* is a worker of its own: its own
connection to the Runtime API (one `GET next` long poll each), its own middleware pipeline (a
persistent middleware never serves two calls at once) and a language runtime process: its own,
or one shared with other slots when the adapter's `ready` says it takes N > 1 invocations at
once (`sor.runtime.shared`: ⌈slots / N⌉ processes). A graceful timeout or a crash stops only
the process that ran that invocation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sor.config.model import RuntimeSettings
from sor.logs import Log
from sor.values import mutable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.middleware.pipeline import Pipeline
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime
    from sor.runtime.shared import SharedRuntime

MAX_CONCURRENCY_VAR = "AWS_LAMBDA_MAX_CONCURRENCY"


def slot_count(env: Mapping[str, str], settings: RuntimeSettings, log: Log) -> int:
    """How many invocations to serve at once: the variable's N, capped by the config."""
    text = env.get(MAX_CONCURRENCY_VAR, "").strip()
    if not text:
        return 1
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        log.warning(f"{MAX_CONCURRENCY_VAR}={text!r} ignored: not a whole number of at least 1")
        return 1
    wanted = int(text)
    if settings.concurrency != "auto":
        return min(wanted, settings.concurrency)
    return wanted


def process_of_slots(slots: int, per_process: int) -> list[int]:
    """The process each slot runs on, numbered from 0: ``per_process`` slots to a process, so
    ⌈slots / per_process⌉ processes."""
    return [slot // max(per_process, 1) for slot in range(slots)]


def slot_runtimes(
    runtimes: list[LanguageRuntime], plan: list[int], make: Callable[[], LanguageRuntime]
) -> list[LanguageRuntime | SharedRuntime]:
    """The runtime of each slot of ``plan`` (`process_of_slots`): its own process, or, where
    several slots share one, a `SharedRuntime` (``make``: a replacement process)."""
    if len(runtimes) == len(plan):
        return list(runtimes)
    from sor.runtime.shared import SharedRuntime

    shared = [SharedRuntime(runtime, make) for runtime in runtimes]
    return [shared[process] for process in plan]


@mutable
class Slot:
    """One worker: its API connection, its language runtime, its pipeline, its invoker."""

    api: RuntimeApiClient
    language: LanguageRuntime | SharedRuntime
    pipeline: Pipeline | None
    invoker: Invoker

    def close(self) -> None:
        """Stop what the slot started (its runtime, its middlewares) and its connection."""
        self.language.stop()
        if self.pipeline is not None:
            self.pipeline.close()
        self.api.close()
