"""The effective configuration: merged, validated data plus environment overrides become the
frozen `Config`, with the origin of every value and the problems only the whole config shows
(a missing handler, a middleware executable that cannot be found).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sor.config.merge import Merged, supplier
from sor.config.model import (
    HOOKS,
    CloudEventsSettings,
    Config,
    DebugSettings,
    HookTimeouts,
    Middleware,
    RuntimeSettings,
    ShutdownSettings,
    Timeouts,
)
from sor.config.rules import PathKey, duration_seconds, handler_problem, name_problem
from sor.errors import ConfigError, Problem
from sor.resources import data_file
from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sor.events.declarative import Compiled

MIDDLEWARE_VARS = ("SOR_MIDDLEWARES", "SLSMIDDLEWARES")  # the first one set wins


@frozen
class Origin:
    """Where an effective value came from: a file position, an environment variable, a default."""

    source: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}" if self.line else self.source


DEFAULT = Origin("default")


@frozen
class EnvMiddlewares:
    """The middleware list an environment variable asks for."""

    var: str
    names: list[str]
    cols: dict[str, int]  # where each name starts in the value, 1-based
    problems: list[Problem]


def env_middlewares(env: Mapping[str, str]) -> EnvMiddlewares | None:
    """The middleware names `SOR_MIDDLEWARES` (or `SLSMIDDLEWARES`) asks for, or None when
    neither is set. Unsafe or repeated names are problems, never resolved."""
    for var in MIDDLEWARE_VARS:
        if var not in env:
            continue
        names: list[str] = []
        cols: dict[str, int] = {}
        problems: list[Problem] = []
        offset = 0
        for part in env[var].split(","):
            name = part.strip()
            col = offset + len(part) - len(part.lstrip()) + 1
            offset += len(part) + 1
            if not name:
                continue
            why = name_problem(name)
            if why is None and name in names:
                why = f"middleware {name!r} is listed twice"
            if why is not None:
                problems.append(Problem(f"${var}", 1, col, "middlewares", f"{why}; refused"))
            else:
                names.append(name)
                cols[name] = col
        return EnvMiddlewares(var, names, cols, problems)
    return None


_MISSING: Any = object()


def _p(base: PathKey, *parts: str | int) -> PathKey:
    return (*base, *parts)


class _Builder:
    def __init__(self, merged: Merged, env: Mapping[str, str], root: str, layer: str) -> None:
        self.merged = merged
        self.data = merged.data
        self.env = env
        self.root = root
        self.layer = layer
        self.default = DEFAULT
        self.env_var = ""  # the variable that chose the middlewares, if one did
        self.env_cols: dict[str, int] = {}
        self.fallback = DEFAULT  # the origin of timeouts.middleware
        self.origins: dict[PathKey, Origin] = {}
        self.problems: list[Problem] = []

    def value(self, path: PathKey, default: Any, into: PathKey | None = None) -> Any:
        """The value at `path` of the merged data (or `default`), noting its origin."""
        node: Any = self.data
        for part in path:
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if in_list or (isinstance(node, dict) and part in node):
                node = node[part]
            else:
                node = default
                break
        self.origins[into or path] = self.origin(path, self.default)
        return node

    def origin(self, path: PathKey, fallback: Origin = DEFAULT) -> Origin:
        """The file position of the merged node at `path`, else `fallback`."""
        source = supplier(self.merged.sources, path)
        if source is None or path not in source.positions:
            return fallback
        return Origin(source.file, *source.positions[path])

    def seconds(self, path: PathKey, default: float, into: PathKey | None = None) -> float:
        value = self.value(path, _MISSING, into)
        if value is _MISSING:
            return default
        found = duration_seconds(value)
        if found is None:  # checked files never get here: data that skipped the rules does
            self.problems.append(
                self.merged.problem(path, f"{value!r} is not a duration of more than 0 seconds")
            )
            return default
        return found

    def runtime(self) -> RuntimeSettings:
        language = self.value(("runtime", "language"), RuntimeSettings.language)
        handler = self.value(("runtime", "handler"), None)
        if handler is None and self.env.get("_HANDLER"):
            handler = self.env["_HANDLER"]
            self.origins[("runtime", "handler")] = Origin("env _HANDLER")
            why = handler_problem(language, handler)
            if why:
                self.problems.append(Problem("$_HANDLER", 1, 1, "runtime.handler", why))
        command = self.value(("runtime", "command"), None)
        if handler is None and language != "exec":
            self.problems.append(
                self.merged.problem(
                    ("runtime",),
                    f"no handler: set runtime.handler (module.function) for {language} in "
                    "sor.yml, or the _HANDLER environment variable",
                )
            )
        signature = self.value(("runtime", "signature"), RuntimeSettings.signature)
        concurrency = self.value(("runtime", "concurrency"), RuntimeSettings.concurrency)
        return RuntimeSettings(
            language=language,
            handler=handler,
            command=tuple(command) if command is not None else None,
            signature=signature,
            concurrency=concurrency,
        )

    def middlewares(self, default_timeout: float) -> tuple[Middleware, ...]:
        declared: list[Any] = self.value(("middlewares",), [])
        chosen: list[tuple[dict[str, Any], PathKey | None]] = [
            (item, ("middlewares", i)) for i, item in enumerate(declared)
        ]
        override = env_middlewares(self.env)
        if override is not None:
            self.env_var, names, self.env_cols = override.var, override.names, override.cols
            self.problems.extend(override.problems)
            self.origins[("middlewares",)] = Origin(f"env {self.env_var}")
            by_name = {item["name"]: (item, path) for item, path in chosen}
            chosen = [by_name.get(name, ({"name": name}, None)) for name in names]
        out = []
        for i, (item, path) in enumerate(chosen):
            middleware = self.middleware(item, path, ("middlewares", i), default_timeout)
            if middleware is not None:
                out.append(middleware)
        return tuple(out)

    def middleware(
        self, item: dict[str, Any], path: PathKey | None, into: PathKey, default_timeout: float
    ) -> Middleware | None:
        """One middleware: declared at `path` of the merged data, or (None) named by the env."""
        name: str = item["name"]
        at: PathKey = path or ()
        if path is None:
            self.origins[_p(into, "name")] = Origin(f"env {self.env_var}")
            here = self.root
        else:
            self.value(_p(at, "name"), name, _p(into, "name"))
            declaring = supplier(self.merged.sources, _p(at, "path"))
            here = os.path.dirname(declaring.file) if declaring else self.root
        resolved = self.resolve(name, item.get("path"), here, at, into)
        self.fallback = self.origins[("timeouts", "middleware")]
        timeout = item.get("timeout")
        timeouts: dict[str, float] = {}
        for hook in HOOKS:
            into_hook = _p(into, "timeout", hook)
            if isinstance(timeout, dict) and hook in timeout:
                timeouts[hook] = self.seconds(_p(at, "timeout", hook), default_timeout, into_hook)
            elif timeout is not None and not isinstance(timeout, dict):
                timeouts[hook] = self.seconds(_p(at, "timeout"), default_timeout, into_hook)
            else:
                timeouts[hook] = default_timeout
                self.origins[into_hook] = Origin(f"timeouts.middleware: {self.fallback}")
        settings: dict[str, Any] = {}
        defaults = (
            ("mode", Middleware.mode),
            ("on_error", Middleware.on_error),
            ("hooks", list(Middleware.hooks)),
        )
        for key, default in defaults:
            settings[key] = self.value(_p(at, key), default, _p(into, key)) if path else default
            if path is None:
                self.origins[_p(into, key)] = self.default
        visible = self.value(_p(at, "env"), "inherit", _p(into, "env")) if path else "inherit"
        if path is None:
            self.origins[_p(into, "env")] = self.default
        if resolved is None:
            return None
        return Middleware(
            name=name,
            path=resolved,
            mode=settings["mode"],
            timeouts=HookTimeouts(**timeouts),
            on_error=settings["on_error"],
            hooks=tuple(settings["hooks"]),
            env=None if visible == "inherit" else tuple(visible),
        )

    def resolve(
        self, name: str, explicit: Any, here: str, at: PathKey, into: PathKey
    ) -> str | None:
        """The executable of a middleware, or None after noting a problem naming where it looked."""
        if isinstance(explicit, str):
            candidates = [os.path.normpath(os.path.join(here, explicit))]
        else:
            # The function's folder, the layer's, then the middlewares that ship with sor
            # (in a layer built by `sor package` the last two are the same folder).
            folders = [
                os.path.join(self.root, "middlewares"),
                os.path.join(self.layer, "middlewares"),
            ]
            shipped = data_file("middlewares")
            folders += [shipped] if shipped not in folders else []
            candidates = [os.path.join(folder, name) for folder in folders]
        for candidate in candidates:
            if os.path.isfile(candidate):
                if not os.access(candidate, os.X_OK):
                    self.report(
                        at,
                        name,
                        f"middleware {name!r}: {candidate} is not executable "
                        f"(chmod +x {candidate})",
                    )
                    return None
                self.origins[_p(into, "path")] = (
                    self.origin(_p(at, "path"))
                    if isinstance(explicit, str)
                    else Origin(f"found in {os.path.dirname(candidate)}")
                )
                return candidate
        looked = " nor ".join(str(c) for c in candidates)
        self.report(at, name, f"middleware {name!r} not found: there is no {looked}")
        return None

    def compiled(self, mappings: tuple[dict[str, Any], ...]) -> tuple[Compiled, ...]:
        """The declarative mappings compiled now, each one that fails a problem at its place."""
        if not mappings:
            return ()
        from sor.events.declarative import compile_one  # only configs with mappings pay

        out = []
        for i, spec in enumerate(mappings):
            try:
                out.append(compile_one(spec, i))
            except ConfigError as exc:
                self.problems.append(
                    self.merged.problem(("cloudevents", "mappings", i), exc.message)
                )
        return tuple(out)

    def report(self, at: PathKey, name: str, message: str) -> None:
        if at:
            self.problems.append(self.merged.problem(_p(at, "name"), message))
        else:  # a name the environment asked for
            col = self.env_cols.get(name, 1)
            self.problems.append(Problem(f"${self.env_var}", 1, col, "middlewares", message))


def build(
    merged: Merged, env: Mapping[str, str], root: str, layer: str
) -> tuple[Config, dict[PathKey, Origin], list[Problem]]:
    """The `Config` of validated, merged data under `env`; also origins and late problems."""
    b = _Builder(merged, env, root, layer)
    version = b.value(("version",), Config.version)
    timeouts = Timeouts(
        grace=b.seconds(("timeouts", "grace"), Timeouts.grace),
        middleware=b.seconds(("timeouts", "middleware"), Timeouts.middleware),
    )
    runtime = b.runtime()
    middlewares = b.middlewares(timeouts.middleware)
    mappings = tuple(b.value(("cloudevents", "mappings"), []))
    cloudevents = CloudEventsSettings(
        partial_batch_response=b.value(
            ("cloudevents", "partial_batch_response"), CloudEventsSettings.partial_batch_response
        ),
        malformed=b.value(("cloudevents", "malformed"), CloudEventsSettings.malformed),
        mappings=mappings,
        compiled=b.compiled(mappings),
    )
    debug = DebugSettings(
        enabled=b.value(("debug", "enabled"), DebugSettings.enabled),
        allow=tuple(b.value(("debug", "allow"), [])),
    )
    shutdown = ShutdownSettings(
        signal=b.value(("shutdown", "signal"), ShutdownSettings.signal),
    )
    b.origins[("task_root",)] = (
        Origin("env LAMBDA_TASK_ROOT")
        if "LAMBDA_TASK_ROOT" in env
        else (Origin("current directory"))
    )
    b.origins[("layer_dir",)] = Origin("env SOR_LAYER_DIR") if "SOR_LAYER_DIR" in env else DEFAULT
    config = Config(
        runtime=runtime,
        middlewares=middlewares,
        timeouts=timeouts,
        cloudevents=cloudevents,
        debug=debug,
        shutdown=shutdown,
        task_root=root,
        layer_dir=layer,
        version=int(version),
    )
    return config, b.origins, b.problems
