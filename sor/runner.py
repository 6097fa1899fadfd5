"""The `sor run` loop: init (config, language runtime, middlewares), then next -> answer, forever.

Init failures are reported to `/init/error` and end the process with status 1, as Lambda expects
of a runtime. Every invocation gets exactly one answer, whatever goes wrong inside sor. SIGTERM
(and SIGINT) end the loop cleanly: between invocations at once, during one after its answer; the
language runtime and persistent middlewares are stopped with it.

Cold start order: the config is loaded, the language runtime is spawned at once, and the rest of
init (the invocation and Runtime API modules, the middleware pipeline) runs while it boots; only
then does sor wait for its `ready` (docs/performance.md). Modules are imported in that order, not
when this one is.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sor.errors import SorError, UsageError
from sor.logs import Log

if TYPE_CHECKING:
    from sor.config import Config
    from sor.invocation import Invoker, PipelineLike
    from sor.language import LanguageRuntime
    from sor.runtime_api import Invocation, RuntimeApiClient

# Lambda bounds init itself (10 s, or the function timeout when init is retried); this only
# guarantees that a runtime that never says `ready` cannot hold sor forever outside Lambda.
INIT_TIMEOUT = 300.0


class _Terminated(BaseException):
    """Raised by the signal handler to leave a blocking `next` call."""


def load_config(env: Mapping[str, str], cwd: Path) -> Config:
    """The effective configuration (sor.loader); ConfigError lists every problem."""
    from sor import loader

    return loader.load(env, cwd, quick=True)


class Runner:
    """One `sor run` process: owns the Runtime API client, language runtime and pipeline."""

    def __init__(self, env: Mapping[str, str], *, cwd: Path, log: Log) -> None:
        address = env.get("AWS_LAMBDA_RUNTIME_API")
        if not address:
            raise UsageError("`sor run` needs AWS_LAMBDA_RUNTIME_API (host:port of the API)")
        self.env = env
        self.cwd = cwd
        self.log = log
        self.address = address
        self._api: RuntimeApiClient | None = None
        self.language: LanguageRuntime | None = None
        self.pipeline: Any = None
        self._busy = False
        self._stop = False

    def run(self) -> int:
        """Run until terminated; 0 after SIGTERM, 1 after an init error."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            invoker = self._init()
            if invoker is None:
                return 1
            self._loop(invoker)
            return 0
        except _Terminated:
            return 0
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def api(self) -> RuntimeApiClient:
        """The Runtime API client, made on first use (its modules load while the runtime boots)."""
        if self._api is None:
            from sor.runtime_api import RuntimeApiClient

            self._api = RuntimeApiClient(self.address)
        return self._api

    def _init(self) -> Invoker | None:
        began = time.monotonic()
        try:
            from sor.language import LanguageRuntime

            guess = self._guess(LanguageRuntime)
            config = load_config(self.env, self.cwd)
            if guess is not None and (guess.settings, guess.task_root) == (
                config.runtime,
                config.task_root,
            ):
                self.language, started = guess, "before-config"
            else:
                started = "after-config"
                if guess is not None:
                    guess.stop(graceful=False)
                self.language = LanguageRuntime(
                    config.runtime, task_root=config.task_root, env=self.env, log=self.log
                )
                self.language.spawn()
            # Everything below overlaps with the language runtime's own start-up.
            from sor.invocation import Invoker

            api = self.api
            self.pipeline = self._pipeline(config)
            self.language.wait_ready(began + INIT_TIMEOUT)
        except SorError as exc:
            self.log.error(f"init failed: {exc.error_type}: {exc.message}")
            self.api.init_error(exc.payload())
            return None
        self.log.info(
            "init",
            duration_ms=round((time.monotonic() - began) * 1000, 2),
            runtime=config.runtime.language,
            handler=config.runtime.handler,
            middlewares=len(config.middlewares),
            runtime_started=started,
        )
        return Invoker(
            config, self.language, api, log=self.log, env=self.env, pipeline=self.pipeline
        )

    def _guess(self, runtime: type[LanguageRuntime]) -> LanguageRuntime | None:
        """The Python runtime of `_HANDLER`, spawned before the config is even read.

        On Lambda `_HANDLER` is the function's handler setting, and most functions are Python
        ones: starting their runtime first hides the parsing of sor.yml behind the interpreter's
        own start. The guess is made only when the handler's module is a Python file of the task
        root (so no other function's code is run by it) and kept only when the config agrees.
        """
        from sor.config import RuntimeSettings
        from sor.loader import task_root

        handler = self.env.get("_HANDLER", "")
        module, _, function = handler.rpartition(".")
        if not module or not function or ".." in handler or handler.startswith("/"):
            return None
        root = task_root(self.env, self.cwd)
        path = root / module.replace(".", "/")
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            return None
        guess = runtime(
            RuntimeSettings(handler=handler), task_root=root, env=self.env, log=self.log
        )
        try:
            guess.spawn()
        except SorError:
            return None  # the real attempt, after the config, reports what is wrong
        self.language = guess  # stopped on shutdown whatever happens next
        return guess

    def _pipeline(self, config: Config) -> PipelineLike | None:
        if not config.middlewares:
            return None  # no middleware code is imported for functions without middlewares
        from sor.pipeline import Pipeline

        pipeline = Pipeline(config.middlewares, log=self.log, env=self.env)
        self.pipeline = pipeline  # closed on shutdown even when start fails half-way
        pipeline.start()
        return pipeline

    def _loop(self, invoker: Invoker) -> None:
        from sor.runtime_api import RuntimeApiError

        while not self._stop:
            inv = self.api.next()
            self._busy = True
            try:
                invoker.handle(inv)
            except RuntimeApiError:
                raise
            except Exception as exc:  # the answer itself failed: still answer, keep serving
                self._last_resort(inv, exc)
            finally:
                self._busy = False

    def _last_resort(self, inv: Invocation, exc: Exception) -> None:
        self.log.error(f"invocation failed inside sor: {type(exc).__name__}: {exc}", inv.request_id)
        error = {"errorType": "Sor.Error", "errorMessage": f"sor failed: {exc}", "stackTrace": []}
        try:
            self.api.fail(inv.request_id, error)
        except SorError as again:
            self.log.error(f"could not post the error either: {again.message}", inv.request_id)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True
        if not self._busy:
            raise _Terminated

    def _shutdown(self) -> None:
        if self.language is not None:
            self.language.stop()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._api is not None:
            self._api.close()


def run(env: Mapping[str, str], *, cwd: Path, log: Log | None = None) -> int:
    """`sor run`: serve invocations until terminated."""
    return Runner(env, cwd=cwd, log=log or Log.from_env(env)).run()
