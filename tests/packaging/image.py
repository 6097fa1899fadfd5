"""A Lambda image in a temp folder, as far as a process can tell: what the layer tests run in.

- the image's Python: a venv of a real interpreter of that version, made `--without-pip`, so
  that it has no site packages at all (as /var/lang/bin/python3.X on a managed runtime);
- a PATH holding only that venv's bin and a folder of links to the image's programs (sh, bash,
  coreutils, awk), and no `node` on a Python image;
- the layer unpacked with its permissions, then made read-only (as /opt), the function's code
  read-only (as /var/task), and only a temp folder writable (HOME, TMPDIR: as /tmp);
- the layer started through its exec wrapper as Lambda starts it,
  `sor-wrapper /var/lang/bin/python3.X /var/runtime/bootstrap.py`, with Lambda's variables.

The tests run as root, which writes through missing write bits: `snapshot` records the layer's
files so that a test sees anything written into it.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

# What a Lambda image has besides its language: POSIX tools the layer's scripts and the shipped
# middlewares use (a `#!/bin/sh` middleware, `#!/usr/bin/env bash` for bash-runtime).
IMAGE_PROGRAMS = ("sh", "bash", "cat", "awk", "env", "ls", "mkdir", "rm", "sed", "grep", "tr")


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` on this machine: this one, PATH's pythonX.Y, or pyenv's."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}") or ""]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def unpack(zip_path: Path, dest: Path) -> Path:
    """The layer as Lambda unpacks it, keeping the permissions the zip holds."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)
    return dest


def read_only(root: Path) -> Path:
    """Take every write bit off ``root`` and everything under it."""
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            path.chmod(stat.S_IMODE(path.lstat().st_mode) & ~0o222)
    root.chmod(stat.S_IMODE(root.stat().st_mode) & ~0o222)
    return root


def writable(root: Path) -> None:
    """Give write bits back, so that pytest can remove its temp folders."""
    for folder, dirs, _ in os.walk(root):
        Path(folder).chmod(0o755)
        for name in dirs:
            Path(folder, name).chmod(0o755)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime_ns), to see anything written there."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            info = Path(folder, name).stat()
            found[os.path.relpath(Path(folder, name), root)] = (info.st_size, info.st_mtime_ns)
    return found


@dataclass(frozen=True)
class Image:
    """A managed Python runtime's image, laid out under ``root``."""

    root: Path
    python: Path  # the image's interpreter, as /var/lang/bin/python3.X
    bin: Path  # the image's other programs
    # False: provided.al2023, whose image has no Python; ``python`` stands for a Python layer's.
    python_on_path: bool = True

    @property
    def path(self) -> str:
        return f"{self.python.parent}:{self.bin}" if self.python_on_path else str(self.bin)

    def env(self, task: Path, runtime_api: str, **extra: str) -> dict[str, str]:
        """Lambda's variables for a function in ``task``, and nothing from this machine."""
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        return {
            "PATH": self.path,
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "HOME": str(tmp),
            "TMPDIR": str(tmp),
            "LAMBDA_TASK_ROOT": str(task),
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
            "AWS_LAMBDA_LOG_STREAM_NAME": "stream",
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/sor-wrapper",
            **extra,
        }

    def wrapper_argv(self, layer: Path) -> list[str]:
        """How Lambda starts a runtime through AWS_LAMBDA_EXEC_WRAPPER on a Python image."""
        return [str(layer / "sor-wrapper"), str(self.python), "/var/runtime/bootstrap.py"]


def python_image(root: Path, interpreter: str, python_on_path: bool = True) -> Image:
    """The image of a managed Python runtime whose Python is ``interpreter`` (or, with
    ``python_on_path`` false, of provided.al2023 with a layer holding that Python)."""
    venv = root / "var" / "lang"
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = subprocess.run(
        [str(venv / "bin" / "python3"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for program in IMAGE_PROGRAMS:
        found = shutil.which(program, path="/usr/bin:/bin")
        if found:
            (bin_dir / program).symlink_to(found)
    python = venv / "bin" / f"python{version}"
    return Image(root=root, python=python, bin=bin_dir, python_on_path=python_on_path)
