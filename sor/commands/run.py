"""`sor run`: the runtime itself, as the layer's bootstrap execs it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sor.logs import TELEMETRY_FD, Log
from sor.runtime import loop as runner

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def main(args: argparse.Namespace | None, env: Mapping[str, str]) -> int:
    """Serve invocations from AWS_LAMBDA_RUNTIME_API until terminated (``args``: none needed)."""
    log = Log.from_env(env, telemetry=True)
    if TELEMETRY_FD in env:
        # sor owns the telemetry descriptor, as AWS's runtime clients do: no child sees the
        # variable (or inherits the descriptor); sor frames their output itself.
        os.environ.pop(TELEMETRY_FD, None)
        env = {k: v for k, v in env.items() if k != TELEMETRY_FD}
    return runner.run(env, cwd=Path.cwd(), log=log)
