"""`sor run`: the runtime itself, as the layer's bootstrap execs it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sor.runtime import loop as runner

if TYPE_CHECKING:
    import argparse


def main(args: argparse.Namespace | None, env: Mapping[str, str]) -> int:
    """Serve invocations from AWS_LAMBDA_RUNTIME_API until terminated (``args``: none needed)."""
    return runner.run(env, cwd=Path.cwd())
