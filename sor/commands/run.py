"""`sor run`: the runtime itself, as the layer's bootstrap execs it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from sor import runner


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Serve invocations from AWS_LAMBDA_RUNTIME_API until terminated."""
    return runner.run(env, cwd=Path.cwd())
