"""`sor package`: build the Lambda layer zip."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from sor.packaging import layer


def default_out(target: layer.Target, node: str | None = None) -> Path:
    """The zip's name when --out is not given: it says what the layer is built for."""
    with_node = f"-node{node}" if node else ""
    return Path(f"sor-layer-python{target.python}-{target.arch}{with_node}.zip")


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    target = layer.target_for(args.python, args.arch)
    out = Path(args.out) if args.out else default_out(target, args.node)
    source = Path(args.dir) if args.dir is not None else None

    def emit(line: str) -> None:
        print(f"sor package: {line}", file=sys.stderr)

    built = layer.build(source, out, target, env, emit, node_major=args.node)
    with_node = f" with Node.js {built.node}" if built.node else ""
    print(
        f"built {built.path}: sor layer for Python {target.python} on {target.arch}{with_node}, "
        f"{built.files} files ({built.bytecode} compiled), {_size(built.zip_bytes)} zipped, "
        f"{_size(built.unpacked_bytes)} unpacked, sha256 {built.sha256}"
    )
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
