"""Compiled bytecode for the layer, made by an interpreter of the target Python version.

Lambda's /opt is read-only: without `.pyc` files next to the sources, every cold start compiles
every module it imports. The files are hash-based and unchecked (PEP 552): they hold a hash of
their source instead of its timestamp, so two builds give the same bytes, and Python loads them
without reading the source to check them. Each one is compiled as if its source lived where
Lambda puts it (`/opt/python/...`), so no path of the build machine ends up in the layer.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from sor.process import exchange

_TIMEOUT = 600.0
_MAX_OUTPUT = 1 << 20
# Run by the target interpreter with -I (no site, no user paths, no PYTHON* variables): compiles
# the tree argv[1] as if it were the folder argv[2], failing on the first file it cannot compile.
_COMPILE = """\
import compileall, py_compile, sys
ok = compileall.compile_dir(
    sys.argv[1], ddir=sys.argv[2], quiet=1, workers=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 1)
"""
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"


class BytecodeError(Exception):
    """The target interpreter failed to compile the layer's sources."""


def find_interpreter(version: str, env: Mapping[str, str]) -> str | None:
    """A Python ``version`` ("3.12") to compile with: this one, else `pythonX.Y` on PATH.

    A candidate is asked for its version (a pyenv shim answers to a name it cannot run).
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}", path=env.get("PATH", os.defpath))
    if found is None:
        return None
    try:
        done = exchange.run(
            [found, "-I", "-c", _VERSION], env=dict(env), input=b"", timeout=30.0, max_output=4096
        )
    except OSError:
        return None
    answered = done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""
    return found if answered == version else None


def compile_tree(
    tree: Path, lambda_path: PurePosixPath, *, python: str, env: Mapping[str, str]
) -> int:
    """Compile every `.py` under ``tree`` (which Lambda will see as ``lambda_path``) with
    ``python``; the number of `.pyc` files written. BytecodeError naming the file that failed."""
    # A fixed hash seed: the order of frozenset constants (`x in {"a", "b"}`) depends on it.
    compile_env = {"PATH": env.get("PATH", os.defpath), "PYTHONHASHSEED": "0"}
    argv = [python, "-I", "-c", _COMPILE, str(tree), str(lambda_path)]
    try:
        done = exchange.run(
            argv, env=compile_env, input=b"", timeout=_TIMEOUT, max_output=_MAX_OUTPUT
        )
    except OSError as exc:
        raise BytecodeError(f"cannot run {python}: {exc}") from None
    if done.returncode != 0:
        why = "timed out" if done.timed_out else f"failed (exit status {done.returncode})"
        output = done.stdout.decode(errors="replace").splitlines() + list(done.stderr_tail)
        tail = "; ".join(line.strip() for line in output if line.strip())[-2000:]
        raise BytecodeError(f"compiling the layer's Python files with {python} {why}: {tail}")
    return sum(1 for _ in tree.rglob("__pycache__/*.pyc"))
