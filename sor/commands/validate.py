"""`sor validate [FILE...] [--format text|json|github]`.

Named files are checked each on its own: YAML syntax, the schema, and the rules beyond it.
Without a FILE the discovered config is checked as `sor run` would load it: files merged,
environment overrides applied, middleware executables resolved.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sor.config.loader import check_file, load
from sor.errors import ConfigError, Invalid, Problem, UsageError
from sor.values import as_dict


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Report every problem; 0 when valid, 1 when not, 2 for a file that does not exist."""
    files: list[str] = list(args.files)
    missing = [name for name in files if not Path(name).is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    problems: list[Problem] = []
    if files:
        for name in files:
            problems.extend(check_file(Path(name), name)[1])
        what = ", ".join(files)
    else:
        what = "the discovered configuration"
        try:
            load(env, Path.cwd())
        except ConfigError as exc:
            if not exc.problems:  # no configuration at all: nothing to point at
                raise Invalid(exc.message) from None
            problems.extend(exc.problems)
    sys.stdout.write(render(problems, args.format))
    if problems:
        raise Invalid(f"{len(problems)} problem(s) in {what}")
    print(f"sor validate: {what}: valid", file=sys.stderr)
    return 0


def render(problems: Sequence[Problem], fmt: str) -> str:
    """The problems as text lines, a JSON list, or GitHub Actions workflow commands."""
    if fmt == "json":
        return json.dumps([as_dict(p) for p in problems], indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(p) + "\n" for p in problems)
    return "".join(f"{p}\n" for p in problems)


def _github(p: Problem) -> str:
    # Workflow command escaping: properties also escape ':' and ','.
    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    where = f"file={prop(p.file)},line={p.line},col={p.col}"
    return f"::error {where}::{data(p.path or '<root>')}: {data(p.message)}"
