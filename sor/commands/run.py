"""`sor run`: the runtime itself, as the layer's bootstrap execs it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sor.logs import TELEMETRY_FD, Log

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
    # The guessed runtime boots while the rest of sor is imported (sor.runtime.head_start).
    from sor.runtime.head_start import head_start

    cwd = os.getcwd()
    head = head_start(env, cwd, log)
    from sor.runtime import loop

    return loop.run(env, cwd=cwd, log=log, head=head)
