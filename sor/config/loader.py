"""Where the configuration comes from: discovery, merge, environment overrides, and the frozen
`Config` built from them, with the origin of every effective value.

Order (later wins): `$SOR_LAYER_DIR/sor.yml`, then `$LAMBDA_TASK_ROOT/sor.yml` (mappings merge key
by key, lists replace), or `$SOR_CONFIG` instead of both; then `SOR_MIDDLEWARES` (or
`SLSMIDDLEWARES`) replaces the middleware list and `_HANDLER` fills a missing handler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from sor.errors import ConfigError, Problem
from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.effective import Origin
    from sor.config.model import Config
    from sor.config.rules import PathKey
    from sor.config.source import Source

    # A folder or file as callers have it; sor's own values are plain strings (os.path), so
    # that `sor run` never loads pathlib (docs/performance.md).
    Place = str | os.PathLike[str]

FILE_NAME = "sor.yml"


@frozen
class Loaded:
    """The effective config, the files it came from, and the origin of each value by path."""

    config: Config
    files: tuple[str, ...]
    origins: Mapping[PathKey, Origin]


def task_root(env: Mapping[str, str], cwd: Place) -> str:
    """`$LAMBDA_TASK_ROOT`, relative to `cwd`, else `cwd`, made absolute."""
    return _absolute(cwd, env.get("LAMBDA_TASK_ROOT", "."))


def layer_dir(env: Mapping[str, str], cwd: Place) -> str:
    """`$SOR_LAYER_DIR`, else /opt, made absolute."""
    return _absolute(cwd, env.get("SOR_LAYER_DIR", "/opt"))


def discover(env: Mapping[str, str], cwd: Place) -> list[str]:
    """The config files that exist, in merge order. `SOR_CONFIG` must exist when set."""
    if env.get("SOR_CONFIG"):
        chosen = _absolute(cwd, env["SOR_CONFIG"])
        if not os.path.isfile(chosen):
            raise ConfigError(f"SOR_CONFIG={env['SOR_CONFIG']}: no such file ({chosen})")
        return [chosen]
    found: list[str] = []
    for folder in (layer_dir(env, cwd), task_root(env, cwd)):
        candidate = os.path.join(folder, FILE_NAME)
        if os.path.isfile(candidate) and candidate not in found:
            found.append(candidate)
    return found


def check_file(
    path: Place, name: str | None = None, *, quick: bool = False
) -> tuple[Source, tuple[Problem, ...]]:
    """Parse and validate one file on its own (syntax, schema, rules); cached by content.

    ``quick`` (the `sor run` path): jsonschema is imported only when the file is not valid.
    """
    from sor.config.source import MAX_BYTES, Source, too_large

    label = name if name is not None else os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never more: a huge file is refused unread
            size = len(raw) if len(raw) <= MAX_BYTES else os.fstat(fh.fileno()).st_size
        if size > MAX_BYTES:
            problem = too_large(size, label)
            return Source(label, problems=[problem]), (problem,)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(label, 1, 1, "", f"cannot read the file: {exc}")
        return Source(label, problems=[problem]), (problem,)
    return _checked(label, text, quick)


@functools.lru_cache(maxsize=64)
def _checked(label: str, text: str, quick: bool) -> tuple[Source, tuple[Problem, ...]]:
    # yaml and jsonschema are imported here, on first use, never when this module is imported;
    # yaml only for a file that the plain reader does not take (docs/performance.md).
    from sor.config import yaml_lite
    from sor.config.schema import check

    source = yaml_lite.parse(text, label)
    if source is None:
        from sor.config import yaml_source

        source = yaml_source.parse(text, label)
    return source, tuple(check(source, quick=quick))


def load(env: Mapping[str, str], cwd: Place, *, quick: bool = False) -> Config:
    """The effective config of the function; raises `ConfigError` with every problem.

    ``quick``: as in `check_file`; the problems reported are the same either way.
    """
    return load_with_origins(env, cwd, quick=quick).config


def load_with_origins(env: Mapping[str, str], cwd: Place, *, quick: bool = False) -> Loaded:
    """Like `load`, also telling where each effective value came from."""
    # Here, not at the top: sor.runtime.head_start needs `task_root` before anything else.
    from sor.config.effective import build
    from sor.config.merge import Merged

    files = discover(env, cwd)
    if not files and not env.get("_HANDLER"):
        looked = [os.path.join(folder(env, cwd), FILE_NAME) for folder in (layer_dir, task_root)]
        raise ConfigError(
            f"no configuration: there is no {looked[0]} nor {looked[1]}, and neither SOR_CONFIG "
            "nor _HANDLER is set. Write a sor.yml (`version: 1` and `runtime.handler`), point "
            "SOR_CONFIG at one, or set _HANDLER (python handler, no middlewares)."
        )
    sources: list[Source] = []
    problems: list[Problem] = []
    for path in files:
        source, found = check_file(path, quick=quick)
        sources.append(source)
        problems.extend(found)
    if problems:
        raise ConfigError(problems)
    merged = Merged(sources)
    config, origins, found_later = build(merged, env, task_root(env, cwd), layer_dir(env, cwd))
    if found_later:
        raise ConfigError(found_later)
    return Loaded(config, tuple(files), origins)


def _absolute(cwd: Place, path: str) -> str:
    """``path`` relative to ``cwd`` (unless absolute), normalised (`a/../b` is `b`)."""
    return os.path.normpath(os.path.join(os.path.abspath(cwd), path))
