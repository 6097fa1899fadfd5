"""Building the sor Lambda layer: a staging tree, then a reproducible zip of it.

Layout of the layer (unpacked by Lambda under /opt):

    bootstrap            entry point on provided.al2023: finds a Python, execs `python -m sor run`
    sor-wrapper          AWS_LAMBDA_EXEC_WRAPPER for the managed runtimes
    sor.yml              from the layer source, when given
    middlewares/         the middlewares shipped with sor, then the layer source's
    runtimes/            the language runtime adapters (exec: /opt/runtimes/exec/bash-runtime)
    python/              sor and its dependencies, for the target Python and machine, with
                         their bytecode (__pycache__/*.cpython-XY.pyc) for the target Python
      sor/_data/         schema, runtimes: as the sor wheel carries them
    node/bin/node        with --node MAJOR: Node.js, for Node functions on a Python runtime
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sor.errors import SorError
from sor.packaging import archive, bytecode, node
from sor.process import exchange
from sor.resources import data_path

_ARCH_OF_MACHINE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
_PLATFORM_OF_ARCH = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
# Where the sor wheel has them too; shipped middlewares go to the layer's middlewares/ instead,
# where sor looks for them ($SOR_LAYER_DIR/middlewares).
_SHIPPED_DATA = ("schema", "runtimes")
_PIP_TIMEOUT = 900.0
_PIP_MAX_OUTPUT = 1 << 24
_TARGET_MARK = "@TARGET_PYTHON@"
# Where Lambda puts the layer's python/ folder: the path the bytecode is compiled for.
LAMBDA_SITE = PurePosixPath("/opt/python")


class PackageError(SorError):
    """The layer could not be built: a bad option, layer source or environment, or pip failed.

    Every failure of `sor package` is this one error, exit status 1 (SPEC: `sor package` exits
    0 / 1); only argparse's own usage errors exit 2, as for every command.
    """

    error_type = "Sor.PackageError"


@dataclass(frozen=True)
class Target:
    """The Python version and machine the layer's compiled packages are built for."""

    python: str  # "3.12"
    arch: str  # "x86_64" | "arm64"

    @property
    def platform(self) -> str:
        """pip's --platform tag: manylinux2014 runs on every Lambda runtime (glibc >= 2.17)."""
        return _PLATFORM_OF_ARCH[self.arch]


def target_for(python: str | None, arch: str | None) -> Target:
    """The target chosen on the command line, defaulting to this interpreter and machine."""
    if python is None:
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
    match = re.fullmatch(r"3\.(\d{1,2})", python)
    if match is None or int(match.group(1)) < 10:
        raise PackageError(f"--python {python}: expected a Python version 3.10 or later, as X.Y")
    if arch is None:
        machine = platform.machine().lower()
        if machine not in _ARCH_OF_MACHINE:
            raise PackageError(f"Lambda has no {machine} machines: choose --arch x86_64 or arm64")
        arch = _ARCH_OF_MACHINE[machine]
    if arch not in _PLATFORM_OF_ARCH:
        raise PackageError(f"--arch {arch}: expected x86_64 or arm64")
    return Target(python=python, arch=arch)


@dataclass(frozen=True)
class Layer:
    """A built layer zip."""

    path: Path
    target: Target
    files: int
    unpacked_bytes: int
    zip_bytes: int
    sha256: str
    bytecode: int = 0  # .pyc files compiled for the target Python (0: none could be)
    node: str | None = None  # the Node.js version added by --node


LOCK_FILE = "requirements.lock"


def runtime_requirements() -> list[str]:
    """What the layer needs of sor's dependencies, as its distribution metadata declares them
    (no extras, nothing only the client side imports)."""
    from importlib import metadata

    try:
        declared = metadata.requires("sor") or []
    except metadata.PackageNotFoundError:
        raise PackageError(
            "sor's distribution metadata was not found: install sor (pip install sor, or "
            "pip install -e . in its source tree) to build a layer"
        ) from None
    return [req for req in declared if "extra" not in req.partition(";")[2]]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower()


def pip_command(site: Path, target: Target, requirements: list[str]) -> list[str]:
    """The pip command that installs ``requirements`` into ``site`` for ``target``, wheels only."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--target",
        str(site),
        "--only-binary=:all:",
        "--platform",
        target.platform,
        "--python-version",
        target.python,
        "--implementation",
        "cp",
        # The versions this repository tests: a new release upstream never changes a layer.
        "--constraint",
        str(data_path(LOCK_FILE)),
        *requirements,
    ]


def install_dependencies(
    site: Path, target: Target, env: Mapping[str, str], emit: Callable[[str], None]
) -> None:
    """pip-install sor's dependencies into ``site``; PackageError with pip's words on failure."""
    argv = pip_command(site, target, runtime_requirements())
    emit(f"installing sor's dependencies for Python {target.python} on {target.arch} with pip")
    pip_env = {**env, "PIP_NO_WARN_SCRIPT_LOCATION": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = exchange.run(
            argv,
            env=pip_env,
            input=b"",
            timeout=_PIP_TIMEOUT,
            max_output=_PIP_MAX_OUTPUT,
        )
    except OSError as exc:
        raise PackageError(f"cannot run pip: {exc}") from None
    if done.returncode != 0:
        why = "timed out" if done.timed_out else f"failed (exit status {done.returncode})"
        tail = "; ".join(line for line in done.stderr_tail if line.strip())
        raise PackageError(
            f"pip install for Python {target.python} on {target.arch} {why}: {tail}",
            stack_trace=list(done.stderr_tail),
        )
    # Console scripts carry this machine's interpreter path: useless on Lambda, not reproducible.
    shutil.rmtree(site / "bin", ignore_errors=True)


def copy_sor(site: Path) -> None:
    """sor itself into ``site``, laid out as its wheel installs it (package, _data, metadata)."""
    from importlib import metadata

    import sor

    package = Path(sor.__file__).resolve().parent
    shutil.copytree(package, site / "sor", ignore=shutil.ignore_patterns("_data", "__pycache__"))
    for name in _SHIPPED_DATA:
        source = data_path(name)
        if source.is_dir():
            shutil.copytree(source, site / "sor" / "_data" / name, ignore=_ignore_caches)
    dist = metadata.distribution("sor")
    info = site / f"sor-{dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(dist.read_text("METADATA") or "", encoding="utf-8")


def add_scripts(root: Path, target: Target) -> None:
    """The bootstrap (told the target Python) and the exec wrapper, at the layer's root."""
    for name in ("bootstrap", "sor-wrapper"):
        text = data_path("layer", name).read_text(encoding="utf-8")
        if name == "bootstrap":
            if _TARGET_MARK not in text:
                raise PackageError(f"{data_path('layer', name)} has no {_TARGET_MARK} mark")
            text = text.replace(_TARGET_MARK, target.python)
        path = root / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)


def check_source(source: Path) -> None:
    """Refuse a layer source with nothing to add or an invalid sor.yml, before any download."""
    if not source.is_dir():
        raise PackageError(f"{source}: the layer source is not a folder")
    config = source / "sor.yml"
    if not config.is_file() and not (source / "middlewares").is_dir():
        raise PackageError(f"{source} has neither a sor.yml nor a middlewares/ folder to add")
    if config.is_file():
        from sor.config.loader import check_file

        _, problems = check_file(config)
        if problems:
            lines = [str(p) for p in problems]
            raise PackageError(
                f"the layer source's {config} is invalid, {len(lines)} problem(s): "
                + "; ".join(lines),
                stack_trace=lines,
            )


def add_source(root: Path, source: Path, emit: Callable[[str], None]) -> None:
    """The layer source's sor.yml and middlewares/ into the layer (``check_source`` first)."""
    if (source / "sor.yml").is_file():
        shutil.copyfile(source / "sor.yml", root / "sor.yml")
    middlewares = source / "middlewares"
    if not middlewares.is_dir():
        return
    for name, path in archive.tree_files(middlewares):
        dest = root / "middlewares" / name
        if dest.exists():
            emit(f"the layer source's middlewares/{name} replaces the one shipped with sor")
        if len(name.parts) == 1 and not path.stat().st_mode & 0o111:
            emit(f"warning: middlewares/{name} is not executable: Lambda cannot run it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def add_bytecode(
    site: Path, target: Target, env: Mapping[str, str], emit: Callable[[str], None]
) -> int:
    """Compile ``site`` for the target Python when one is on this machine; the .pyc count.

    Without one the layer still works (Python compiles in memory at each cold start, slower):
    say so, and how to fix it.
    """
    python = bytecode.find_interpreter(target.python, env)
    if python is None:
        emit(
            f"warning: no Python {target.python} on this machine (python{target.python} on "
            f"PATH): the layer has no bytecode, so every cold start compiles sor's modules; "
            f"install Python {target.python} (or run sor package with it) and build again"
        )
        return 0
    emit(f"compiling the layer's bytecode with {python}")
    try:
        return bytecode.compile_tree(site, LAMBDA_SITE, python=python, env=env)
    except bytecode.BytecodeError as exc:
        raise PackageError(str(exc)) from None


def build(
    source: Path | None,
    out: Path,
    target: Target,
    env: Mapping[str, str],
    emit: Callable[[str], None],
    node_major: str | None = None,
) -> Layer:
    """Build the layer zip ``out`` for ``target``, adding the layer source folder when given
    and Node.js ``node_major`` when asked for."""
    try:
        epoch = archive.epoch_from(env)
        if node_major is not None:
            node.release_for(node_major)  # a bad major fails before any download
    except (ValueError, node.NodeError) as exc:
        raise PackageError(str(exc)) from None
    if out.is_dir():
        raise PackageError(f"--out {out}: is a folder, expected the zip file to write")
    if source is not None:
        check_source(source)
    with tempfile.TemporaryDirectory(prefix="sor-layer-") as staging:
        root = Path(staging)
        site = root / "python"
        site.mkdir()
        install_dependencies(site, target, env, emit)
        try:
            copy_sor(site)
            add_scripts(root, target)
            # Also at the layer's root, where sor.yml files name them (/opt/runtimes/exec/...).
            shutil.copytree(data_path("runtimes"), root / "runtimes", ignore=_ignore_caches)
            shipped = data_path("middlewares")
            if shipped.is_dir():
                shutil.copytree(shipped, root / "middlewares", ignore=_ignore_caches)
            if source is not None:
                add_source(root, source, emit)
        except OSError as exc:  # shutil.Error too: a file that vanished, one that cannot be read
            raise PackageError(f"cannot stage the layer's files: {_os_error(exc)}") from None
        compiled = add_bytecode(site, target, env, emit)
        node_version = None
        if node_major is not None:
            try:
                node_version = node.add_node(root, node_major, target.arch, env, emit)
            except (node.NodeError, OSError) as exc:
                raise PackageError(str(exc)) from None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            written = archive.write_zip(root, out, epoch, keep_bytecode=True)
        except OSError as exc:
            raise PackageError(f"cannot write {out}: {_os_error(exc)}") from None
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return Layer(
        path=out,
        target=target,
        files=written.files,
        unpacked_bytes=written.unpacked_bytes,
        zip_bytes=out.stat().st_size,
        sha256=digest,
        bytecode=compiled,
        node=node_version,
    )


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc.strerror or exc)


def _ignore_caches(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}
