"""`sor config [DIR]`: the effective configuration and where each value came from.

The output is YAML that `sor validate` accepts, with the origin of every value as a comment: a
file position, an environment variable, `default`, or the folder a middleware was found in.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sor.config.effective import DEFAULT
from sor.config.loader import Loaded, load_with_origins
from sor.config.model import HOOKS, Config
from sor.config.rules import PathKey
from sor.errors import ConfigError, Invalid

_PLAIN = re.compile(r"^[A-Za-z_/.][\w./@-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print the effective config (DIR, when given, is the function folder); 1 on problems."""
    env = dict(env)
    if args.dir is not None:
        folder = Path(args.dir)
        if not folder.is_dir():
            raise Invalid(f"no such folder: {args.dir}")
        env["LAMBDA_TASK_ROOT"] = str(folder.absolute())
    try:
        loaded = load_with_origins(env, Path.cwd())
    except ConfigError as exc:
        if not exc.problems:  # no configuration at all: nothing to point at
            raise Invalid(exc.message) from None
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise Invalid(f"the configuration is invalid: {len(exc.problems)} problem(s)") from None
    sys.stdout.write(render(loaded))
    return 0


def render(loaded: Loaded) -> str:
    """The effective config as commented YAML."""
    config = loaded.config
    rows: list[tuple[str, str]] = []

    def row(text: str, path: PathKey | None = None) -> None:
        origin = loaded.origins.get(path, DEFAULT) if path is not None else None
        rows.append((text, "" if origin is None else str(origin)))

    row(f"version: {config.version}", ("version",))
    row("runtime:")
    _runtime(config, row)
    if config.middlewares:
        row("middlewares:", ("middlewares",))
    else:
        row("middlewares: []", ("middlewares",))
    for i, m in enumerate(config.middlewares):
        at: PathKey = ("middlewares", i)
        row(f"  - name: {_scalar(m.name)}", (*at, "name"))
        row(f"    path: {_scalar(str(m.path))}", (*at, "path"))
        row(f"    mode: {m.mode}", (*at, "mode"))
        row("    timeout:")
        for hook in HOOKS:
            row(f"      {hook}: {_duration(m.timeouts.of(hook))}", (*at, "timeout", hook))
        row(f"    on_error: {m.on_error}", (*at, "on_error"))
        row(f"    hooks: [{', '.join(m.hooks)}]", (*at, "hooks"))
        env = "inherit" if m.env is None else json.dumps(list(m.env))
        row(f"    env: {env}", (*at, "env"))
    row("timeouts:")
    row(f"  grace: {_duration(config.timeouts.grace)}", ("timeouts", "grace"))
    row(f"  middleware: {_duration(config.timeouts.middleware)}", ("timeouts", "middleware"))
    row("cloudevents:")
    ce = config.cloudevents
    row(
        f"  partial_batch_response: {_scalar(ce.partial_batch_response)}",
        ("cloudevents", "partial_batch_response"),
    )
    row(f"  malformed: {ce.malformed}", ("cloudevents", "malformed"))
    if ce.mappings:
        row("  mappings:", ("cloudevents", "mappings"))
        dumped = yaml.safe_dump(list(ce.mappings), sort_keys=False, default_flow_style=False)
        rows.extend((f"    {line}", "") for line in dumped.splitlines())
    else:
        row("  mappings: []", ("cloudevents", "mappings"))
    row("debug:")
    row(f"  enabled: {_scalar(config.debug.enabled)}", ("debug", "enabled"))
    row(f"  allow: {json.dumps(list(config.debug.allow))}", ("debug", "allow"))
    row("shutdown:")
    row(f"  signal: {_scalar(config.shutdown.signal)}", ("shutdown", "signal"))
    width = min(max(len(text) for text, _ in rows) + 2, 60)
    head = [
        "# sor config: the effective configuration, each value's origin on its right",
        f"# files, in merge order: {', '.join(map(str, loaded.files)) or 'none'}",
        f"# function folder: {config.task_root} ({loaded.origins.get(('task_root',), DEFAULT)})",
        f"# layer folder: {config.layer_dir} ({loaded.origins.get(('layer_dir',), DEFAULT)})",
    ]
    # A comment needs a space before its '#', or YAML reads it as part of a long value.
    body = [f"{text.ljust(width - 1)} # {origin}" if origin else text for text, origin in rows]
    return "\n".join([*head, *body]) + "\n"


def _runtime(config: Config, row: Any) -> None:
    r = config.runtime
    row(f"  language: {r.language}", ("runtime", "language"))
    if r.handler is not None:
        row(f"  handler: {_scalar(r.handler)}", ("runtime", "handler"))
    if r.command is not None:
        row(f"  command: {json.dumps(list(r.command))}", ("runtime", "command"))
    row(f"  signature: {r.signature}", ("runtime", "signature"))
    row(f"  concurrency: {r.concurrency}", ("runtime", "concurrency"))


def _duration(seconds: float) -> str:
    millis = seconds * 1000
    if seconds < 1 and millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value)
