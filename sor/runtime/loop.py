"""The `sor run` loop: init (config, language runtime, middlewares), then next -> answer, forever.

Init failures (any exception, not only sor's own errors) are reported to `/init/error` and end
the process with status 1, as Lambda expects of a runtime. Every invocation gets exactly one
answer, whatever goes wrong inside sor. SIGTERM (and SIGINT) end the loop cleanly: during init
at the next step (the handler only sets a flag, checked between init steps; the wait for `ready`
is woken through the signal wakeup fd), between invocations at once (the wait for the next one,
and its retries, are woken the same way; an invocation whose first byte arrived is still taken
and answered), during one after its answer, which is never abandoned (posting it is retried as
usual); the language runtime and persistent middlewares are stopped with it. Once shutdown
starts, further signals are ignored. With `shutdown.signal` or a `shutdown` hook configured,
sor.runtime.shutdown registers at init (so that Lambda sends SIGTERM at all) and, at SIGTERM,
runs the hooks and gives the language runtime the rest of Lambda's ~500 ms.

Cold start order: the runtime `_HANDLER` names was spawned before this module was even imported
(sor.runtime.head_start); the config is loaded, that guess kept or another runtime spawned, and
the rest of init (the invocation and Runtime API modules, the middleware pipeline) runs while it
boots; only then does sor wait for its `ready` (docs/performance.md). Modules are imported in
that order, not when this one is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from sor.errors import SorError, UsageError
from sor.logs import Log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sor.config.model import Config
    from sor.middleware.pipeline import Pipeline
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.head_start import HeadStart
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime
    from sor.runtime.shared import SharedRuntime
    from sor.runtime.shutdown import Shutdown
    from sor.runtime.slots import Slot

# Lambda bounds init itself (10 s, or the function timeout when init is retried); this only
# guarantees that a runtime that never says `ready` cannot hold sor forever outside Lambda.
INIT_TIMEOUT = 300.0


class _Terminated(Exception):
    """Raised between init steps when a signal asked sor to stop."""


def load_config(env: Mapping[str, str], cwd: str) -> Config:
    """The effective configuration (sor.config.loader); ConfigError lists every problem."""
    from sor.config import loader

    return loader.load(env, cwd, quick=True)


class Runner:
    """One `sor run` process: owns the Runtime API client, language runtime and pipeline."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        cwd: str,
        log: Log,
        head: HeadStart | None = None,
    ) -> None:
        """``head``: what sor.runtime.head_start did (its runtime is kept if the config agrees)."""
        address = env.get("AWS_LAMBDA_RUNTIME_API")
        if not address:
            raise UsageError("`sor run` needs AWS_LAMBDA_RUNTIME_API (host:port of the API)")
        self.env = env
        self.cwd = cwd
        self.log = log
        self.address = address
        self._api: RuntimeApiClient | None = None
        self._head = head
        self._guess = head.runtime if head is not None else None
        # stopped on shutdown whatever happens next
        self.language: LanguageRuntime | SharedRuntime | None = self._guess
        self.pipeline: Any = None
        # A signal only sets _stop (init checks it between steps; serving ends the loop after
        # the current answer); once shutting down, signals are ignored.
        self._phase = "init"
        self._stop = False
        self._wake_r: int | None = None
        self.shutdown: Shutdown | None = None  # only with shutdown.signal or a shutdown hook
        self._signalled_at: float | None = None
        self._stop_r: int | None = None
        self._stop_w: int | None = None
        self._slots: list[Slot] = []  # the workers beyond the first, on Managed Instances
        self._starting: list[LanguageRuntime] = []  # spawned for them, not yet in a slot

    def run(self) -> int:
        """Run until terminated; 0 after SIGTERM, 1 after an init error."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._wake_r = wake_r
        # Workers wait on a pipe of their own, written on stop and never drained: the signal
        # wakeup fd is the main thread's, which drains it for signals that do not stop sor.
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        if self._head is not None:
            previous = self._head.previous  # restored on return, not the head start's own
            for signum in self._head.signals:  # arrived before this loop took over
                self._on_signal(signum, None)
        try:
            invoker = self._init()
            if invoker is None:
                return 1
            self._phase = "serving"
            self._serve(invoker)
            return 0
        except _Terminated:
            return 0
        finally:
            self._phase = "shutdown"
            self._shutdown()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (wake_r, wake_w, self._stop_r, self._stop_w):
                os.close(fd)
            self._wake_r = self._stop_r = self._stop_w = None

    @property
    def api(self) -> RuntimeApiClient:
        """The Runtime API client, made on first use (its modules load while the runtime boots)."""
        if self._api is None:
            from sor.runtime.api import RuntimeApiClient

            self._api = RuntimeApiClient(self.address)
        return self._api

    def _check(self) -> None:
        """Between init steps: abandon init when a signal arrived."""
        if self._stop:
            raise _Terminated

    def _init(self) -> Invoker | None:
        began = time.monotonic()
        try:
            from sor.runtime.language import LanguageRuntime

            guess, self._guess = self._guess, None
            self._check()
            config = load_config(self.env, self.cwd)
            self._check()
            if guess is not None and (guess.settings, guess.task_root) == (
                config.runtime,
                config.task_root,
            ):
                guess.load()  # the first line of user code runs now, in the process kept
                language, started = guess, "before-config"
            else:
                started = "after-config"
                if guess is not None:
                    self.language = None
                    guess.stop(graceful=False)  # it never loaded the handler: no code ran
                language = self.language = LanguageRuntime(
                    config.runtime, task_root=config.task_root, env=self.env, log=self.log
                )
                language.spawn()
            self._check()
            # Everything below overlaps with the language runtime's own start-up.
            from sor.runtime.invocation import Invoker

            api = self.api
            self.pipeline = self._pipeline(config)
            self._register(config)
            self._check()
            from sor.runtime.slots import slot_count  # after the spawn, as every import here

            count = slot_count(self.env, config.runtime, self.log)
            more: list[LanguageRuntime] = []
            if count > 1 and config.runtime.language == "python":
                # One invocation per process: the other slots' runtimes boot alongside.
                more = self._spawn(config, count - 1)
                self._slots = self._more_slots(config, more)
                self._starting = []
            for runtime in (language, *more):
                self._wait_ready(runtime, began)
            serving: LanguageRuntime | SharedRuntime = language
            if count > 1 and config.runtime.language != "python":
                # The first process's `ready` says how many invocations it takes at once.
                shared = self._share(config, count, language, began)
                self.language = serving = shared[0]
                self._slots = self._more_slots(config, shared[1:])
        except _Terminated:
            raise
        except Exception as exc:  # sor's errors, and its bugs: reported as Lambda expects
            from sor.runtime.answer import failure, unexpected

            answer = failure(exc) if isinstance(exc, SorError) else unexpected(exc, "during init")
            error = answer.error
            self.log.error(f"init failed: {error['errorType']}: {error['errorMessage']}")
            self.api.init_error(error, answer.shape)
            return None
        extra: dict[str, Any] = {}
        if count > 1:
            extra["concurrency"] = count
            extra["processes"] = len({id(slot.language) for slot in self._slots} | {id(serving)})
        self.log.info(
            "init",
            duration_ms=round((time.monotonic() - began) * 1000, 2),
            runtime=config.runtime.language,
            handler=config.runtime.handler,
            middlewares=len(config.middlewares),
            runtime_started=started,
            **extra,
        )
        return Invoker(config, serving, api, log=self.log, env=self.env, pipeline=self.pipeline)

    def _pipeline(self, config: Config) -> Pipeline | None:
        if not config.middlewares:
            return None  # no middleware code is imported for functions without middlewares
        from sor.middleware.pipeline import Pipeline

        pipeline = Pipeline(config.middlewares, log=self.log, env=self.env)
        self.pipeline = pipeline  # closed on shutdown even when start fails half-way
        pipeline.start()
        return pipeline

    def _register(self, config: Config) -> None:
        """Be told of the shutdown (SIGTERM) when configured; before the first `next`."""
        if config.handles_shutdown:
            from sor.runtime.shutdown import Shutdown

            self.shutdown = Shutdown(self.address, log=self.log, env=self.env)
            self.shutdown.register()

    def _spawn(self, config: Config, count: int) -> list[LanguageRuntime]:
        """``count`` more language runtimes, spawned, not yet ready."""
        from sor.runtime.language import LanguageRuntime

        for _ in range(count):
            runtime = LanguageRuntime(
                config.runtime, task_root=config.task_root, env=self.env, log=self.log
            )
            self._starting.append(runtime)  # stopped on shutdown even when init fails half-way
            runtime.spawn()
        return self._starting[-count:] if count else []

    def _wait_ready(self, runtime: LanguageRuntime, began: float) -> None:
        while not runtime.wait_ready(began + INIT_TIMEOUT, self._wake_r):
            self._check()  # woken by a signal
            self._drain_wakeups()

    def _share(
        self, config: Config, count: int, first: LanguageRuntime, began: float
    ) -> list[LanguageRuntime | SharedRuntime]:
        """The runtime of each of ``count`` slots, ``first`` (ready) the first one's: a process
        per slot, or one for every N slots when its `ready` said it takes N at once."""
        from functools import partial

        from sor.runtime.language import LanguageRuntime
        from sor.runtime.slots import process_of_slots, slot_runtimes

        plan = process_of_slots(count, min(first.concurrency, count))
        runtimes = [first, *self._spawn(config, plan[-1])]
        for runtime in runtimes[1:]:
            self._wait_ready(runtime, began)
        self._starting = []  # the slots own them now (a shared one, its reader thread)
        make = partial(
            LanguageRuntime, config.runtime, task_root=config.task_root, env=self.env, log=self.log
        )
        return slot_runtimes(runtimes, plan, make)

    def _more_slots(
        self, config: Config, runtimes: Sequence[LanguageRuntime | SharedRuntime]
    ) -> list[Slot]:
        """A worker for each of ``runtimes`` (sor.runtime.slots), beyond the first one."""
        from sor.middleware.pipeline import Pipeline
        from sor.runtime.api import RuntimeApiClient
        from sor.runtime.invocation import Invoker
        from sor.runtime.slots import Slot

        slots: list[Slot] = []
        self._slots = slots  # stopped on shutdown even when init fails half-way
        for runtime in runtimes:
            api = RuntimeApiClient(self.address)
            pipeline = None
            if config.middlewares:
                pipeline = Pipeline(config.middlewares, log=self.log, env=self.env)
            invoker = Invoker(config, runtime, api, log=self.log, env=self.env, pipeline=pipeline)
            slots.append(Slot(api, runtime, pipeline, invoker))
            if pipeline is not None:
                pipeline.start()
        return slots

    def _serve(self, invoker: Invoker) -> None:
        """Answer invocations until stopped: the first slot here, the others in threads."""
        workers = [
            threading.Thread(
                target=self._worker, args=(slot.invoker, slot.api), name=f"sor-slot-{n}"
            )
            for n, slot in enumerate(self._slots, start=1)
        ]
        for worker in workers:
            worker.start()
        try:
            self._loop(invoker, self.api, self._wake_r)
        finally:
            self._stopping()  # a worker waiting for its next invocation stops waiting
            for worker in workers:
                worker.join()  # each ends after its current answer

    def _worker(self, invoker: Invoker, api: RuntimeApiClient) -> None:
        try:
            self._loop(invoker, api, self._stop_r)
        except SorError as exc:  # the API failed this slot: every slot stops, as sor exits
            self.log.error(f"{exc.error_type}: {exc.message}")
            self._stopping()

    def _loop(self, invoker: Invoker, api: RuntimeApiClient, wake: int | None) -> None:
        from sor.http.client import Interrupted

        while not self._stop:
            try:
                inv = api.next(wake)
            except Interrupted:
                if wake == self._wake_r:
                    self._drain_wakeups()  # a signal that does not stop sor only wakes it
                continue
            invoker.handle(inv)  # answers once, whatever happens; raises only RuntimeApiError

    def _stopping(self) -> None:
        """Stop serving: every slot ends after its current answer."""
        self._stop = True
        if self._stop_w is not None:
            with contextlib.suppress(OSError):
                os.write(self._stop_w, b"!")

    def _drain_wakeups(self) -> None:
        assert self._wake_r is not None
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Never raises: an exception at an arbitrary bytecode could leak a child just spawned
        # or close a descriptor twice. The wakeup fd wakes whatever wait is under way.
        if self._phase != "shutdown":
            if self._signalled_at is None:
                self._signalled_at = time.monotonic()
            self._stopping()

    def _shutdown(self) -> None:
        if self.shutdown is not None and self._signalled_at is not None:
            # the shutdown hooks, then every runtime's SIGTERM within Lambda's time
            runtimes = [*self._starting, *(slot.language for slot in self._slots)]
            runtimes += [self.language] if self.language is not None else []
            unique = list({id(runtime): runtime for runtime in runtimes}.values())  # shared ones
            self.shutdown.run(self.pipeline, self._signalled_at, unique)
        for runtime in self._starting:
            runtime.stop()
        for slot in self._slots:
            slot.close()
        if self.language is not None:
            self.language.stop()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._api is not None:
            self._api.close()


def run(
    env: Mapping[str, str],
    *,
    cwd: str,
    log: Log | None = None,
    head: HeadStart | None = None,
) -> int:
    """`sor run`: serve invocations until terminated (``head``: see `Runner`)."""
    return Runner(env, cwd=cwd, log=log or Log.from_env(env), head=head).run()
