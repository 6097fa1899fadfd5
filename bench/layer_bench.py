"""Cold start from the packaged layer, as Lambda runs it, against awslambdaric in the same run.

The layer is built for this interpreter's version (with its bytecode), unpacked read-only and
started through its exec wrapper (`sor-wrapper PYTHON /var/runtime/bootstrap.py`) with a venv
of this interpreter that has no site packages as the image's Python; the function has a
sor.yml. awslambdaric runs from the venv this bench runs in: the same interpreter.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from bench.runtime_bench import FUNCTION, FUNCTION_YML, HANDLER, _invoke, _Quiet
from bench.stats import Row, p
from sor.emulator.emulator import Emulator
from sor.logs import Log
from sor.packaging import layer

# What both runtimes see of the machine: the programs of an image, nothing of this shell.
_ENV = {"PATH": "/usr/bin:/bin"}


def _build(folder: Path) -> Path:
    """The layer, built and unpacked into ``folder``/opt, made read-only; its path."""
    target = layer.target_for(None, None)
    out = folder / "layer.zip"
    layer.build(None, out, target, os.environ, lambda _: None)
    opt = folder / "opt"
    with zipfile.ZipFile(out) as zf:
        for info in zf.infolist():
            dest = opt / info.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))
            dest.chmod((info.external_attr >> 16) & 0o555)
    for path, dirs, _ in os.walk(opt):
        for name in dirs:
            Path(path, name).chmod(0o555)
    return opt


def _bare_python(folder: Path) -> Path:
    """A venv of this interpreter with no site packages: the image's /var/lang/bin/python3.X."""
    venv = folder / "lang"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def _cold(bootstrap: list[str], directory: Path, runs: int) -> list[float]:
    """Seconds from starting ``bootstrap`` to its first response, ``runs`` times."""
    samples = []
    for i in range(runs):
        emu = Emulator(
            directory, timeout=30, env=_ENV, bootstrap=bootstrap, log=Log(_Quiet()), handler=HANDLER
        )
        began = time.perf_counter()
        emu.start()
        try:
            _invoke(emu, i)
            samples.append(time.perf_counter() - began)
        finally:
            emu.stop()
    return samples


def rows(cold_runs: int) -> Sequence[Row]:
    """The layer's row: cold start p50 through the wrapper, awslambdaric the baseline."""
    with tempfile.TemporaryDirectory(prefix="sor-bench-layer-") as tmp:
        folder = Path(tmp)
        try:
            opt = _build(folder)
            python = _bare_python(folder)
            wrapper = [str(opt / "sor-wrapper"), str(python), "/var/runtime/bootstrap.py"]
            ric = [sys.executable, "-m", "awslambdaric", HANDLER]
            # Alternated, so that a slow moment of the machine hits both alike.
            layer_runs: list[float] = []
            ric_runs: list[float] = []
            for _ in range(cold_runs):
                layer_runs += _cold(wrapper, FUNCTION_YML, 1)
                ric_runs += _cold(ric, FUNCTION, 1)
        finally:
            for path, dirs, _ in os.walk(folder):  # give write bits back to remove the tree
                for name in dirs:
                    Path(path, name).chmod(stat.S_IRWXU)
    value, base = p(layer_runs, 50) * 1000, p(ric_runs, 50) * 1000
    return [
        Row(
            "cold start p50, layer + sor.yml (read-only)",
            value,
            "ms",
            "awslambdaric",
            base,
            "<= 1.3x",
            value <= 1.3 * base,
        )
    ]
