"""The validated configuration: frozen, typed, with every default filled in.

Everything downstream (runtime loop, pipeline, CloudEvents mapping) consumes these classes and
never the raw YAML. Loading, merging and validation live in other modules; this one is the model.
"""

from __future__ import annotations

from sor.values import field, frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from sor.events.declarative import Compiled

    Language = Literal["python", "node", "exec"]
    Signature = Literal["event", "cloudevent"]
    Mode = Literal["exec", "persistent"]
    OnError = Literal["fail", "continue"]
    Malformed = Literal["respond", "fail"]
    Hook = Literal["before", "after", "error", "shutdown"]

HOOKS: tuple[Hook, ...] = ("before", "after", "error")  # the hooks of an invocation: the default

DEFAULT_GRACE = 0.3  # seconds; see docs/timeouts.md
DEFAULT_MIDDLEWARE_TIMEOUT = 1.0


@frozen
class HookTimeouts:
    """Per-hook timeouts in seconds."""

    before: float = DEFAULT_MIDDLEWARE_TIMEOUT
    after: float = DEFAULT_MIDDLEWARE_TIMEOUT
    error: float = DEFAULT_MIDDLEWARE_TIMEOUT

    def of(self, hook: Hook) -> float:
        """The timeout of an invocation hook (a `shutdown` hook gets the shutdown's time)."""
        return float(getattr(self, hook))


@frozen
class Middleware:
    """One middleware of the pipeline, its executable resolved to an absolute path."""

    name: str
    path: str  # absolute
    mode: Mode = "exec"
    timeouts: HookTimeouts = field(default_factory=HookTimeouts)
    on_error: OnError = "fail"
    hooks: tuple[Hook, ...] = HOOKS
    # The function variables it may see besides SOR_* and ALWAYS_VISIBLE; None: all of them.
    env: tuple[str, ...] | None = None


# What any executable needs to start (none of it is a secret): every middleware sees these.
ALWAYS_VISIBLE = ("PATH", "LD_LIBRARY_PATH", "LANG", "TZ")


@frozen
class RuntimeSettings:
    """The language runtime that hosts the handler."""

    language: Language = "python"
    handler: str | None = None
    command: tuple[str, ...] | None = None
    signature: Signature = "event"
    concurrency: int | Literal["auto"] = "auto"  # at most this many invocations at once


@frozen
class Timeouts:
    grace: float = DEFAULT_GRACE
    middleware: float = DEFAULT_MIDDLEWARE_TIMEOUT


@frozen
class CloudEventsSettings:
    """``cloudevents``: the declarative mappings as validated data and compiled, so that a bad
    one fails when the config is built (at init), never at the first event."""

    partial_batch_response: bool = False
    # A malformed CloudEvent from an HTTP trigger: answer the caller 400, or fail the invocation.
    malformed: Malformed = "respond"
    mappings: tuple[dict[str, Any], ...] = ()
    compiled: tuple[Compiled, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.mappings and not self.compiled:
            # Only configs with mappings load the path compiler. Raises ConfigError.
            from sor.events.declarative import compile_mappings

            object.__setattr__(self, "compiled", compile_mappings(self.mappings))


@frozen
class DebugSettings:
    enabled: bool = False
    # Hosts or networks (CIDR) a `_debugProxy` may point at; empty means any.
    allow: tuple[str, ...] = ()


@frozen
class ShutdownSettings:
    # true: sor registers as an internal extension so that Lambda sends SIGTERM at shutdown
    signal: bool = False


@frozen
class Config:
    """The effective configuration of one function."""

    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    middlewares: tuple[Middleware, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    cloudevents: CloudEventsSettings = field(default_factory=CloudEventsSettings)
    debug: DebugSettings = field(default_factory=DebugSettings)
    shutdown: ShutdownSettings = field(default_factory=ShutdownSettings)
    task_root: str = "."  # absolute, as the loader makes it
    layer_dir: str = "/opt"
    version: int = 1

    @property
    def handles_shutdown(self) -> bool:
        """True when sor must hear of the shutdown: `shutdown.signal` or a `shutdown` hook."""
        return self.shutdown.signal or any("shutdown" in mw.hooks for mw in self.middlewares)
