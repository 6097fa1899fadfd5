"""The packaged layer as Lambda runs it: built for this interpreter's version (with its
bytecode), unpacked read-only and started through its exec wrapper (`sor-wrapper PYTHON
/var/runtime/bootstrap.py`) with a venv of this interpreter that has no site packages as the
image's Python; the function has a sor.yml. Its cold start is measured in the runtime bench's
interleaved loop, against awslambdaric from the venv this bench runs in: the same interpreter.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.runtime_bench import FUNCTION_YML, Bootstrap
from sor.packaging import layer


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


@contextmanager
def layer_bootstrap() -> Iterator[Bootstrap]:
    """The read-only layer's bootstrap, for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="sor-bench-layer-") as tmp:
        folder = Path(tmp)
        try:
            opt = _build(folder)
            python = _bare_python(folder)
            wrapper = [str(opt / "sor-wrapper"), str(python), "/var/runtime/bootstrap.py"]
            yield Bootstrap("layer + sor.yml (read-only)", wrapper, FUNCTION_YML)
        finally:
            for path, dirs, _ in os.walk(folder):  # give write bits back to remove the tree
                for name in dirs:
                    Path(path, name).chmod(stat.S_IRWXU)
