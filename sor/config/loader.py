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
from pathlib import Path

from sor.config.effective import Origin, build
from sor.config.merge import Merged
from sor.config.model import Config
from sor.config.rules import PathKey
from sor.errors import ConfigError, Problem
from sor.values import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.source import Source

FILE_NAME = "sor.yml"


@frozen
class Loaded:
    """The effective config, the files it came from, and the origin of each value by path."""

    config: Config
    files: tuple[Path, ...]
    origins: Mapping[PathKey, Origin]


def task_root(env: Mapping[str, str], cwd: Path) -> Path:
    """`$LAMBDA_TASK_ROOT`, relative to `cwd`, else `cwd`, made absolute."""
    return _absolute(cwd / env.get("LAMBDA_TASK_ROOT", "."))


def layer_dir(env: Mapping[str, str], cwd: Path) -> Path:
    """`$SOR_LAYER_DIR`, else /opt, made absolute."""
    return _absolute(cwd / env.get("SOR_LAYER_DIR", "/opt"))


def discover(env: Mapping[str, str], cwd: Path) -> list[Path]:
    """The config files that exist, in merge order. `SOR_CONFIG` must exist when set."""
    if env.get("SOR_CONFIG"):
        chosen = _absolute(cwd / env["SOR_CONFIG"])
        if not chosen.is_file():
            raise ConfigError(f"SOR_CONFIG={env['SOR_CONFIG']}: no such file ({chosen})")
        return [chosen]
    found: list[Path] = []
    for folder in (layer_dir(env, cwd), task_root(env, cwd)):
        candidate = folder / FILE_NAME
        if candidate.is_file() and candidate not in found:
            found.append(candidate)
    return found


def check_file(
    path: Path, name: str | None = None, *, quick: bool = False
) -> tuple[Source, tuple[Problem, ...]]:
    """Parse and validate one file on its own (syntax, schema, rules); cached by content.

    ``quick`` (the `sor run` path): jsonschema is imported only when the file is not valid.
    """
    from sor.config.source import MAX_BYTES, Source, too_large

    label = name if name is not None else str(path)
    try:
        with path.open("rb") as fh:
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


def load(env: Mapping[str, str], cwd: Path, *, quick: bool = False) -> Config:
    """The effective config of the function; raises `ConfigError` with every problem.

    ``quick``: as in `check_file`; the problems reported are the same either way.
    """
    return load_with_origins(env, cwd, quick=quick).config


def load_with_origins(env: Mapping[str, str], cwd: Path, *, quick: bool = False) -> Loaded:
    """Like `load`, also telling where each effective value came from."""
    files = discover(env, cwd)
    if not files and not env.get("_HANDLER"):
        looked = [layer_dir(env, cwd) / FILE_NAME, task_root(env, cwd) / FILE_NAME]
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


def _absolute(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))
