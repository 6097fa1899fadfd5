"""The packaged layer run as Lambda runs it (SPEC: Where sor runs on Lambda).

Each test builds (once per module) the layer for a target Python found on this machine, unpacks
it read-only, and starts it through `sor-wrapper` in a Lambda-shaped image (`image.py`) against
the test Runtime API server: Python, Node.js (`--node`) and exec functions, a middleware from the
layer source and one shipped with sor, and no module compiled at start.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from image import Image, find_python, python_image, read_only, snapshot, unpack, writable
from support.runtime_api_server import Answer, RuntimeApiServer

from sor.packaging import node

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "serverless"
LAYER_SOURCE = EXAMPLE / "layer"
NODE_MAJOR = "22"
# A test here may first build a layer (`sor package`: pip, bytecode for every module, a Node.js
# unpacked), which a loaded 2-core machine takes minutes to do: the suite's 120 s bound is for
# hangs, and `package` bounds the build itself.
pytestmark = pytest.mark.timeout(600)
MB = 1_000_000
# python -v: a module loaded from its .pyc is "code object from '<path>.pyc'" (quoted); one
# compiled from its source is "code object from <path>.py" (not quoted).
_COMPILED_AT_START = re.compile(r"# code object from (/\S+\.py)$", re.MULTILINE)
_LOADED_FROM_PYC = re.compile(r"# code object from '(/\S+\.pyc)'", re.MULTILINE)


def build_env(python: str) -> dict[str, str]:
    """This environment less what steers sor or Python, with ``python``'s folder first on PATH
    (where `sor package` finds the interpreter that compiles the bytecode)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOR_", "AWS_", "LAMBDA_", "PYTHON"))
        and k not in ("SLSMIDDLEWARES", "_HANDLER", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH")
    }
    env["PATH"] = f"{Path(python).parent}:{env.get('PATH', os.defpath)}"
    return env


def package(out: Path, version: str, *options: str) -> subprocess.CompletedProcess[str]:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    argv = [sys.executable, "-m", "sor", "package", str(LAYER_SOURCE), "--python", version]
    argv += ["--out", str(out), *options]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=build_env(python), timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, bool], Path]:
    """The layer zip for a target Python, with or without Node.js: each built once."""
    built: dict[tuple[str, bool], Path] = {}

    def get(version: str, with_node: bool = False) -> Path:
        if (version, with_node) not in built:
            out = tmp_path_factory.mktemp("layer") / f"sor-{version}-{with_node}.zip"
            options = ("--node", NODE_MAJOR) if with_node else ()
            done = package(out, version, *options)
            assert "compiled" in done.stdout and "(0 compiled)" not in done.stdout, done.stdout
            built[(version, with_node)] = out
        return built[(version, with_node)]

    return get


class Lambda:
    """One image with the layer at ``opt``: starts functions through the exec wrapper."""

    def __init__(self, image: Image, opt: Path, tmp: Path) -> None:
        self.image, self.opt, self.tmp = image, opt, tmp
        self.server = RuntimeApiServer()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = tmp / "function.log"

    def start(self, function: Path, argv: list[str] | None = None, **env: str) -> Path:
        """Start the function whose code is ``function`` (copied, made read-only) through the
        exec wrapper (or ``argv``); its task root."""
        task = self.tmp / "task"
        shutil.copytree(function, task, ignore=shutil.ignore_patterns("__pycache__"))
        read_only(task)
        with self.log.open("wb") as sink:
            proc = subprocess.Popen(
                argv or self.image.wrapper_argv(self.opt),
                cwd=task,
                env=self.image.env(task, self.server.address, **env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                start_new_session=True,
            )
        self.procs.append(proc)
        return task

    def invoke(self, event: object) -> Answer:
        try:
            return self.server.invoke(event, wait=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log.read_text()}") from None

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.server.close()


def lambda_for(
    version: str, with_node: bool, layer_zip: Callable[[str, bool], Path], tmp: Path, provided: bool
) -> Lambda:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    image = python_image(tmp / "image", python, python_on_path=not provided)
    opt = read_only(unpack(layer_zip(version, with_node), tmp / "opt"))
    return Lambda(image, opt, tmp)


@pytest.fixture
def on_lambda(
    layer_zip: Callable[[str, bool], Path], tmp_path: Path
) -> Iterator[Callable[..., Lambda]]:
    made: list[Lambda] = []

    def make(version: str, with_node: bool = False, provided: bool = False) -> Lambda:
        made.append(lambda_for(version, with_node, layer_zip, tmp_path, provided))
        return made[-1]

    yield make
    for one in made:
        one.close()
    writable(tmp_path)


# SPEC, Where sor runs on Lambda: Python functions on python3.10 and later (requirements.lock
# is resolved on the oldest supported Python, so its pins install on every one).
@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_python_function_with_a_layer_and_a_shipped_middleware(
    on_lambda: Callable[..., Lambda], version: str
) -> None:
    aws = on_lambda(version, False)
    assert shutil.which("node", path=aws.image.path) is None  # a Python image: no Node.js
    before = snapshot(aws.opt)
    # warmup ships with sor ($SOR_LAYER_DIR/middlewares); envelope is the layer source's, with
    # the settings its /opt/sor.yml gives it. PYTHONVERBOSE: which modules load, and how.
    aws.start(
        EXAMPLE / "functions" / "python", SOR_MIDDLEWARES="warmup,envelope", PYTHONVERBOSE="1"
    )
    answer = aws.invoke({"name": "image"})
    assert answer.kind == "response", answer.body
    body = answer.json()
    assert body["result"]["message"].startswith(f"hello image from Python {version}.")
    assert body["result"]["interpreter"] == str(aws.image.python)
    assert body["requestId"] == body["result"]["requestId"]
    assert aws.invoke({"source": "serverless-plugin-warmup"}).json() == {"warmup": True}
    log = aws.log.read_text()
    # Nothing compiled at start: every module `sor run` and the Python adapter import from the
    # layer comes from its .pyc there, and nothing was written into the read-only layer.
    compiled = [p for p in _COMPILED_AT_START.findall(log) if p.startswith(str(aws.opt))]
    assert compiled == [], compiled
    loaded = {p for p in _LOADED_FROM_PYC.findall(log) if p.startswith(str(aws.opt))}
    assert (
        f"{aws.opt}/python/sor/runtime/__pycache__/loop.cpython-{version.replace('.', '')}.pyc"
        in loaded
    )
    assert snapshot(aws.opt) == before


def test_every_python_file_of_the_layer_has_its_bytecode(
    layer_zip: Callable[[str, bool], Path],
) -> None:
    with zipfile.ZipFile(layer_zip("3.12", False)) as zf:
        names = set(zf.namelist())
    sources = [n for n in names if n.startswith("python/") and n.endswith(".py")]
    assert len(sources) > 100
    for source in sources:
        folder, _, file = source.rpartition("/")
        cached = f"{folder}/__pycache__/{file.removesuffix('.py')}.cpython-312.pyc"
        assert cached in names, source
    stray = [n for n in names if n.endswith(".pyc") and not n.startswith("python/")]
    assert stray == []


def test_node_function_runs_on_the_layers_node(on_lambda: Callable[..., Lambda]) -> None:
    aws = on_lambda("3.12", True)
    assert shutil.which("node", path=aws.image.path) is None
    aws.start(EXAMPLE / "functions" / "node")
    answer = aws.invoke({"name": "image"})
    assert answer.kind == "response", answer.body
    body = answer.json()  # wrapped by the layer source's envelope middleware
    version = node.RELEASES[int(NODE_MAJOR)]
    assert body["result"]["message"] == f"hello image from Node.js v{version}", body


def test_node_function_without_node_says_to_rebuild_with_node(
    on_lambda: Callable[..., Lambda],
) -> None:
    aws = on_lambda("3.12", False)
    aws.start(EXAMPLE / "functions" / "node")
    error = aws.server.wait_init_error(wait=30).json()
    assert error["errorType"] == "Sor.ConfigError", error
    assert "sor package --node MAJOR" in error["errorMessage"], error


def exec_function(folder: Path, runtime: Path) -> Path:
    """A function whose handler is a shell script, run by the layer's bash-runtime."""
    folder.mkdir()
    (folder / "sor.yml").write_text(
        f'version: 1\nruntime:\n  language: exec\n  command: ["{runtime}"]\n  handler: handler.sh\n'
    )
    (folder / "handler.sh").write_text(
        '#!/bin/sh\nevent=$(cat)\nprintf \'{"got": %s}\\n\' "$event"\n'
    )
    (folder / "handler.sh").chmod(0o755)
    return folder


def test_exec_function_runs_the_layers_bash_runtime(
    on_lambda: Callable[..., Lambda], tmp_path: Path
) -> None:
    aws = on_lambda("3.12")
    aws.start(exec_function(tmp_path / "fn", aws.opt / "runtimes" / "exec" / "bash-runtime"))
    answer = aws.invoke({"n": 1})
    assert answer.kind == "response", answer.body
    # the layer's sor.yml wraps every function's result with its envelope middleware
    assert answer.json()["result"] == {"got": {"n": 1}}


def test_exec_function_on_provided_al2023_with_a_python_layer(
    on_lambda: Callable[..., Lambda], tmp_path: Path
) -> None:
    aws = on_lambda("3.12", provided=True)
    assert shutil.which("python3", path=aws.image.path) is None  # the image has no Python
    function = exec_function(tmp_path / "fn", aws.opt / "runtimes" / "exec" / "bash-runtime")
    # Lambda runs /opt/bootstrap itself; SOR_PYTHON names the Python layer's interpreter.
    aws.start(function, [str(aws.opt / "bootstrap")], SOR_PYTHON=str(aws.image.python))
    answer = aws.invoke({"n": 2})
    assert answer.kind == "response", answer.body
    assert answer.json()["result"] == {"got": {"n": 2}}


def test_python_function_on_managed_instances(on_lambda: Callable[..., Lambda]) -> None:
    # SPEC: python3.13 and later for Managed Instances, where several invocations run at once.
    aws = on_lambda("3.13")
    aws.start(EXAMPLE / "functions" / "python", AWS_LAMBDA_MAX_CONCURRENCY="2")
    pending = [aws.server.submit({"name": f"mi{i}"}, timeout=20) for i in range(2)]
    answers = [aws.server.wait_answer(p, wait=30).json() for p in pending]
    messages = sorted(a["result"]["message"].split(" from ")[0] for a in answers)
    assert messages == ["hello mi0", "hello mi1"], aws.log.read_text()


def test_layer_sizes_stay_within_lambdas_limits(layer_zip: Callable[[str, bool], Path]) -> None:
    sizes = {}
    for with_node in (False, True):
        path = layer_zip("3.12", with_node)
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
        sizes[with_node] = (path.stat().st_size, unpacked)
        assert unpacked < 250 * MB, sizes  # Lambda's limit for a function and its layers
    assert sizes[False][0] < 50 * MB, sizes  # Lambda's limit for a zip uploaded directly
    print(f"layer sizes (zip, unpacked) without and with --node: {sizes}")


def test_a_node_build_is_reproducible(
    layer_zip: Callable[[str, bool], Path], tmp_path: Path
) -> None:
    again = tmp_path / "again.zip"
    package(again, "3.12", "--node", NODE_MAJOR)
    assert again.read_bytes() == layer_zip("3.12", True).read_bytes()
