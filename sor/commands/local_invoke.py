"""`sor local invoke`: one invocation of the function in DIR through the embedded emulator."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO

from sor.errors import UsageError

if TYPE_CHECKING:
    from sor.emulator.stream import ChunkStream


def function_env(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus the ``--env K=V`` values (which win)."""
    merged = dict(env)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected K=V")
        merged[key] = value
    return merged


def function_dir(args: argparse.Namespace) -> Path:
    """DIR, absolute; a usage error when it is not a directory."""
    directory = Path(args.dir).resolve()
    if not directory.is_dir():
        raise UsageError(f"{args.dir}: not a directory")
    return directory


def function_timeout(args: argparse.Namespace) -> float:
    """--timeout, which must be a finite positive number of seconds (below a day)."""
    timeout = float(args.timeout)
    # The chained comparison is False for nan and inf too: only real durations pass.
    if not 0 < timeout < 86400:
        raise UsageError(
            f"--timeout {args.timeout}: the function timeout must be a number of seconds "
            "greater than 0 and below 86400"
        )
    return timeout


def configured_handler(directory: Path, env: Mapping[str, str]) -> str | None:
    """The handler of the function's config; raises ConfigError for a bad config."""
    from sor.config import loader  # lazily: it imports the config machinery

    config = loader.load({**env, "LAMBDA_TASK_ROOT": str(directory)}, directory)
    return config.runtime.handler


def read_event(name: str | None, limit: int) -> bytes:
    """The event bytes from FILE, stdin (``-``) or ``{}``: at most ``limit`` bytes of JSON; a
    usage error naming the file when it cannot be read, is too large or is not JSON."""
    if name is None:
        return b"{}"
    label = "stdin" if name == "-" else name
    try:
        if name == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(name, "rb") as f:  # bounded: the file may be /dev/zero or a pipe
                data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"--event {label}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"--event {label}: over {limit} bytes; Lambda accepts at most that")
    try:
        json.loads(data)
    except RecursionError:
        raise UsageError(f"--event {label}: not usable JSON: nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise UsageError(f"--event {label}: not valid JSON: {exc}") from None
    return data


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from sor.emulator.emulator import Emulator
    from sor.limits import MAX_PAYLOAD
    from sor.logs import Log

    directory = function_dir(args)
    timeout = function_timeout(args)  # usage errors first: before the config is even read
    fenv = function_env(args, env)
    event = read_event(args.event, MAX_PAYLOAD)
    handler = configured_handler(directory, fenv)
    emulator = Emulator(directory, timeout, fenv, None, Log.from_env(fenv), handler=handler)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # so that `finally` stops the bootstrap
    out = sys.stdout.buffer
    try:
        emulator.start()
        result = emulator.invoke(event)
        if result.stream is not None:
            return print_stream(result.stream, out)
    finally:
        emulator.stop()
        signal.signal(signal.SIGTERM, previous)
    out.write(result.body if result.body.endswith(b"\n") else result.body + b"\n")
    out.flush()
    # A config error never gets here: the config is loaded above, in this process (exit 2).
    return 0 if result.function_error is None else 1


def print_stream(stream: ChunkStream, out: BinaryIO) -> int:
    """A streamed answer on ``out`` as it arrives, each piece flushed (as the invoke endpoint
    passes it on: an HTTP stream's prelude included); a newline ends it. An error after the
    first byte: the ERROR JSON on stderr, exit status 1."""
    last = b"\n"
    while (piece := stream.next_piece()) is not None:
        out.write(piece)
        out.flush()
        last = piece[-1:] or last
    if last != b"\n":
        out.write(b"\n")
        out.flush()
    if stream.error is None:
        return 0
    error = stream.error.body
    sys.stderr.buffer.write(error if error.endswith(b"\n") else error + b"\n")
    sys.stderr.buffer.flush()
    return 1
