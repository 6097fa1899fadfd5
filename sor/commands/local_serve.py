"""`sor local serve`: the embedded emulator behind RIE's invoke endpoint and function URLs, until
stopped."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from collections.abc import Mapping
from types import FrameType

from sor.commands.local_invoke import (
    configured_handler,
    function_dir,
    function_env,
    function_timeout,
)
from sor.errors import UsageError


def bootstrap_argv(command: str | None) -> list[str] | None:
    """``--bootstrap 'CMD ARGS'`` split as a shell would split it, never run by one."""
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--bootstrap {command!r}: {exc}") from None
    if not argv:
        raise UsageError("--bootstrap: empty command")
    return argv


MAX_CONCURRENCY = 1024  # far more than a machine runs at once; past it, a typo


def max_concurrency(text: str) -> int:
    """``--max-concurrency N``: an integer from 1 to ``MAX_CONCURRENCY``."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise UsageError(
            f"--max-concurrency {text!r}: expected an integer from 1 to {MAX_CONCURRENCY}"
        )
    return int(text)


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from sor.emulator.emulator import Emulator
    from sor.emulator.invoke_endpoint import invoke_server
    from sor.logs import Log

    directory = function_dir(args)
    fenv = function_env(args, env)
    argv = bootstrap_argv(args.bootstrap)
    concurrency = max_concurrency(str(args.max_concurrency))
    handler = configured_handler(directory, fenv) if argv is None else None
    log = Log.from_env(fenv)
    timeout = function_timeout(args)
    emulator = Emulator(
        directory, timeout, fenv, argv, log, handler=handler, max_concurrency=concurrency
    )
    try:
        server = invoke_server(emulator, args.host, args.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        emulator.start()
        host, port = server.server_address[:2]
        url = f"http://{host!s}:{port}/2015-03-31/functions/function/invocations"
        log.info(f"sor local serve: listening on {url}")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        emulator.stop()
    return 0
