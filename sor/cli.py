"""The command line: parses arguments, runs one command, turns SorError into an exit code.

This is the only place where exceptions become exit codes (and their messages, prefixed with the
command's name). Command modules are imported only when
their command runs, so `sor run` pays for nothing it does not use: not even argparse, which a bare
`sor run` (the layer's bootstrap) skips altogether.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from sor import __version__
from sor.errors import SorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="sor", description="Serverless Open Runtime: any language on AWS Lambda."
    )
    parser.add_argument("--version", action="version", version=f"sor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="validate configuration files")
    p.add_argument("files", nargs="*", metavar="FILE", help="default: the discovered config")
    p.add_argument("--format", choices=("text", "json", "github"), default="text")

    sub.add_parser("run", help="the runtime itself (needs AWS_LAMBDA_RUNTIME_API)")

    local = sub.add_parser("local", help="run a function locally with the embedded emulator")
    lsub = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    p = lsub.add_parser("invoke", help="invoke the function once")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR")
    p.add_argument("--event", metavar="FILE|-", help="event JSON (default: {})")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="function timeout")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="set a variable")
    p = lsub.add_parser("serve", help="serve the RIE-compatible invoke endpoint and function URLs")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="function timeout")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="set a variable")
    p.add_argument("--bootstrap", metavar="CMD", help="host this command instead of `sor run`")
    p.add_argument(
        "--max-concurrency",
        default="1",
        metavar="N",
        help="invocations at once (AWS_LAMBDA_MAX_CONCURRENCY, as on Managed Instances)",
    )

    p = sub.add_parser("invoke", help="invoke a running RIE-compatible endpoint")
    p.add_argument("url", nargs="?", metavar="URL", help="default: http://127.0.0.1:9000")
    p.add_argument("--event", metavar="FILE|-", help="event JSON (default: {})")
    p.add_argument("--async", dest="async_", action="store_true", help="invocation type Event")
    p.add_argument("--tenant-id", metavar="ID", help="X-Amz-Tenant-Id")
    p.add_argument("--client-context", metavar="JSON", help="a JSON object (sent base64)")

    sub.add_parser("schema", help="print the JSON Schema of sor.yml")

    p = sub.add_parser("config", help="print the effective config and where values came from")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR")

    p = sub.add_parser("package", help="build a Lambda layer zip")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR")
    p.add_argument("--out", metavar="FILE")
    p.add_argument("--python", metavar="X.Y", help="target Python version (default: this one)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), help="target (default: this machine)")
    p.add_argument(
        "--node", metavar="MAJOR", help="add Node.js of this major version (Node functions)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sor` command."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments == ["run"]:  # the cold-start path: `run` takes no options to parse
        from sor.commands import run
        from sor.process.spawn import Forked

        try:
            return _dispatch("run", run.main, None)
        except Forked as child:  # the language runtime forked from sor's start: it runs here,
            runtime = child.main
        return runtime()  # outside the except: nothing it raises is chained to the fork
    try:
        args = build_parser().parse_args(arguments)
    except SystemExit as exc:  # argparse reports usage errors itself, with status 2
        return int(exc.code or 0)
    name = args.command if args.command != "local" else f"local_{args.local_command}"
    import importlib  # not for `sor run`

    module = importlib.import_module(f"sor.commands.{name}")
    return _dispatch(name.replace("_", " "), module.main, args)


def _dispatch(name: str, command: Callable[..., int], args: argparse.Namespace | None) -> int:
    try:
        code: int = command(args, dict(os.environ))
    except SorError as exc:  # every message names the command it comes from
        print(f"sor {name}: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code
