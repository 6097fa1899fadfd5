"""`sor package`: the layer zip, its bootstrap and wrapper, reproducibility, cross-target builds.

The layer is built once per module (pip downloads from PyPI, cached by pip) and unpacked; the
end-to-end test runs a function through the unpacked bootstrap on an interpreter with none of
sor's dependencies, which proves the zip is self-contained.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.lock import canonical, locked_versions

from sor.packaging import archive, layer
from sor.resources import data_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "serverless"
LAYER_SOURCE = EXAMPLE / "layer"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
Invoker = Callable[[Path, Any], tuple[Any, str]]


def sor(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would steer sor or Python from outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOR_", "AWS_", "LAMBDA_", "PYTHON"))
        and k not in ("SLSMIDDLEWARES", "_HANDLER", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH")
    }
    env.update(extra)
    return env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("layer") / "sor-layer.zip"
    done = sor("package", str(LAYER_SOURCE), "--out", str(out), env=clean_env())
    assert done.returncode == 0, done.stderr
    assert f"built {out}" in done.stdout and f"Python {PYTHON}" in done.stdout
    assert sha256(out) in done.stdout
    return out


@pytest.fixture(scope="module")
def unpacked(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer as Lambda unpacks it (keeping the permissions the zip holds)."""
    dest = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(built) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)
    return dest


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with no pip and none of sor's dependencies: only the standard library."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python3"
    probe = subprocess.run(
        [str(python), "-c", "import yaml"], capture_output=True, env=clean_env(), check=False
    )
    assert probe.returncode != 0, "the bare venv must not see PyYAML"
    return venv / "bin"


# -- the zip itself ----------------------------------------------------------------------------


def test_layer_layout(built: Path) -> None:
    with zipfile.ZipFile(built) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = list(infos)
        config = zf.read("sor.yml")
    assert names == sorted(names)
    for name in ("bootstrap", "sor-wrapper", "middlewares/envelope"):
        assert (infos[name].external_attr >> 16) & 0o777 == 0o755, name
    assert (infos["python/sor/__init__.py"].external_attr >> 16) & 0o777 == 0o644
    assert config == (LAYER_SOURCE / "sor.yml").read_bytes()
    shipped = [p.name for p in data_path("middlewares").iterdir() if os.access(p, os.X_OK)]
    for name in shipped:  # sor looks for them in $SOR_LAYER_DIR/middlewares
        assert (infos[f"middlewares/{name}"].external_attr >> 16) & 0o777 == 0o755, name
    for needed in (
        "python/sor/__main__.py",
        "python/sor/_data/runtimes/python/sor_runtime.py",
        "python/sor/_data/runtimes/node/sor_runtime.js",
        "python/sor/_data/schema/sor.schema.json",
        "python/yaml/__init__.py",
        "python/jsonschema/__init__.py",
        "python/cloudevents/__init__.py",
    ):
        assert needed in infos, needed
    # No HTTP library: sor's own client (sor.http) serves sor run and sor invoke alike.
    assert not any(n.startswith(("python/requests/", "python/urllib3/")) for n in names)
    locked = locked_versions()
    for name in names:  # every dependency in the layer is the version the lock pins
        if name.endswith(".dist-info/METADATA") and not name.startswith("python/sor-"):
            dist, version = name.split("/")[1].removesuffix(".dist-info").rsplit("-", 1)
            assert locked[canonical(dist)] == version, name
    assert any(n.startswith("python/sor-") and n.endswith(".dist-info/METADATA") for n in names)
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    assert f"python/sor/__pycache__/cli.{tag}.pyc" in infos  # this Python compiled the layer
    for name in names:
        if "__pycache__" in name or name.endswith(".pyc"):
            # only the layer's own bytecode, for the target Python, next to its source
            folder, _, file = name.rpartition("/__pycache__/")
            assert name.startswith("python/") and file.endswith(f".{tag}.pyc"), name
            assert f"{folder}/{file.split('.')[0]}.py" in infos, name
        assert not name.endswith((".dist-info/RECORD", "direct_url.json")), name
        assert not name.startswith("python/bin/"), name


def test_the_lock_is_what_pip_is_told(built: Path) -> None:
    argv = layer.pip_command(Path("/x"), layer.target_for("3.12", "arm64"), ["pyyaml"])
    assert argv[argv.index("--constraint") + 1] == str(data_path("requirements.lock"))
    assert "requests" not in " ".join(layer.runtime_requirements())


def test_bootstrap_knows_the_target_python(unpacked: Path) -> None:
    text = (unpacked / "bootstrap").read_text()
    assert f'target="{PYTHON}"' in text and "@TARGET_PYTHON@" not in text


def differing_entries(one: Path, two: Path) -> list[str]:
    with zipfile.ZipFile(one) as a, zipfile.ZipFile(two) as b:
        names = sorted(set(a.namelist()) | set(b.namelist()))
        return [
            n
            for n in names
            if n not in a.namelist() or n not in b.namelist() or a.read(n) != b.read(n)
        ]


def test_building_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    # Two builds back to back (not against the module's layer): sor's own source files are the
    # input too, and must not change in between.
    outs = [tmp_path / "one.zip", tmp_path / "two.zip"]
    for out in outs:
        done = sor("package", str(LAYER_SOURCE), "--out", str(out), env=clean_env())
        assert done.returncode == 0, done.stderr
    assert sha256(outs[0]) == sha256(outs[1]), differing_entries(*outs)
    with zipfile.ZipFile(outs[0]) as zf:  # bytecode included: hash-based, so reproducible
        assert any(n.endswith(".pyc") for n in zf.namelist())


def test_cross_target_build_carries_the_targets_compiled_packages(tmp_path: Path) -> None:
    out = tmp_path / "arm.zip"
    done = sor("package", "--python", "3.12", "--arch", "arm64", "--out", str(out), env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "Python 3.12 on arm64" in done.stdout
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        wheels = {n: zf.read(n).decode() for n in names if n.endswith(".dist-info/WHEEL")}
        bootstrap = zf.read("bootstrap").decode()
    libraries = [n for n in names if n.endswith(".so")]
    assert "python/yaml/_yaml.cpython-312-aarch64-linux-gnu.so" in libraries
    assert libraries and all("cpython-312-aarch64-linux-gnu" in n for n in libraries), libraries
    assert "sor.yml" not in names  # no layer source given
    platform_tags = [
        line for text in wheels.values() for line in text.splitlines() if line.startswith("Tag:")
    ]
    compiled = [t for t in platform_tags if not t.endswith("-any")]
    assert compiled and all("aarch64" in t and "cp312" in t for t in compiled), compiled
    assert 'target="3.12"' in bootstrap


# -- errors ------------------------------------------------------------------------------------


# SPEC: `sor package` exits 0 / 1; every failure is a Sor.PackageError naming what failed. Only
# argparse's own usage errors (an unknown option, a value not among the choices) exit 2.


def test_bad_python_version_fails_with_one(tmp_path: Path) -> None:
    done = sor("package", "--python", "2.7", "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 1
    assert "Sor.PackageError" in done.stderr and "--python 2.7" in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_layer_source_must_hold_something(tmp_path: Path) -> None:
    done = sor("package", str(tmp_path), "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 1
    assert "Sor.PackageError" in done.stderr
    assert "neither a sor.yml nor a middlewares/" in done.stderr
    done = sor("package", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y.zip"))
    assert done.returncode == 1
    assert f"{tmp_path / 'nowhere'}: the layer source is not a folder" in done.stderr


def test_argparse_usage_errors_keep_status_two(tmp_path: Path) -> None:
    done = sor("package", "--arch", "sparc", "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 2
    assert "invalid choice: 'sparc'" in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_invalid_layer_config_is_refused_before_building(tmp_path: Path) -> None:
    (tmp_path / "sor.yml").write_text("version: 1\nruntime:\n  langauge: python\n")
    done = sor("package", str(tmp_path), "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 1
    assert "Sor.PackageError" in done.stderr and "langauge" in done.stderr
    assert f"the layer source's {tmp_path / 'sor.yml'} is invalid, 1 problem(s)" in done.stderr
    assert f"{tmp_path / 'sor.yml'}:3:3: runtime.langauge:" in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_pip_failure_names_the_target(tmp_path: Path) -> None:
    done = sor("package", "--python", "3.99", "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 1
    assert "Sor.PackageError" in done.stderr and "Python 3.99" in done.stderr
    assert not list(tmp_path.iterdir())  # no partial zip left behind


def test_bad_source_date_epoch(tmp_path: Path) -> None:
    env = clean_env(SOURCE_DATE_EPOCH="yesterday")
    done = sor("package", "--out", str(tmp_path / "x.zip"), env=env)
    assert done.returncode == 1 and "SOURCE_DATE_EPOCH" in done.stderr
    assert "Sor.PackageError" in done.stderr


# -- the archive writer ------------------------------------------------------------------------


def make_tree(root: Path, order: list[str]) -> None:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
    (root / "run.sh").chmod(0o700)
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (root / "pkg-1.0.dist-info").mkdir(exist_ok=True)
    (root / "pkg-1.0.dist-info" / "RECORD").write_text(f"{root}\n")


def test_archive_does_not_depend_on_order_times_or_umask(tmp_path: Path) -> None:
    files = ["run.sh", "pkg/m.py", "pkg/a.txt", "pkg-1.0.dist-info/METADATA", "z"]
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one, files)
    make_tree(two, list(reversed(files)))
    os.utime(two / "pkg" / "m.py", (1e9, 1e9))
    (two / "z").chmod(0o600)
    archive.write_zip(one, tmp_path / "one.zip")
    info = archive.write_zip(two, tmp_path / "two.zip")
    assert sha256(tmp_path / "one.zip") == sha256(tmp_path / "two.zip")
    assert info.files == len(files)
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert list(modes) == sorted(files)
    assert modes["run.sh"] == 0o755 and modes["z"] == 0o644


def test_archive_keeps_bytecode_only_when_asked(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", ["run.sh", "pkg/m.py"])
    (tmp_path / "t" / "pkg" / "stray.pyc").write_bytes(b"\0")  # not in a __pycache__
    (tmp_path / "t" / "pkg" / "__pycache__" / "m.opt-1.pyo").write_bytes(b"\0")
    names = [str(n) for n, _ in archive.tree_files(tmp_path / "t")]
    assert not any(".py" in n and n.endswith(("c", "o")) for n in names), names
    kept = [str(n) for n, _ in archive.tree_files(tmp_path / "t", keep_bytecode=True)]
    assert set(kept) - set(names) == {"pkg/__pycache__/m.cpython-311.pyc"}


def test_archive_honours_source_date_epoch(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", ["run.sh", "pkg/m.py"])
    epoch = archive.epoch_from({"SOURCE_DATE_EPOCH": "1700000000"})
    archive.write_zip(tmp_path / "t", tmp_path / "t.zip", epoch)
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    assert archive.epoch_from({"SOURCE_DATE_EPOCH": "5"}) == archive.DEFAULT_EPOCH
    assert archive.epoch_from({}) == archive.DEFAULT_EPOCH


def test_target_defaults_and_platform_tags() -> None:
    target = layer.target_for("3.12", "arm64")
    assert target.platform == "manylinux2014_aarch64"
    assert layer.target_for(None, "x86_64").python == PYTHON
    argv = layer.pip_command(Path("/x"), target, ["pyyaml>=6"])
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in argv and "--no-compile" in argv


# -- the bootstrap and the wrapper, with stand-in interpreters ---------------------------------

FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -c ]; then echo {version}; exit 0; fi
printf '%s\\n' "$0" "$*" "${{SOR_LAYER_DIR-}}" "${{PYTHONPATH-}}" "${{SOR_PYTHON-}}" "$PATH"
"""


def fake_python(folder: Path, name: str, version: str = "ignored") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE_PYTHON.format(version=version))
    path.chmod(0o755)
    return path


def run_script(
    argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=10)


def test_bootstrap_prefers_the_target_python(unpacked: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3.14")
    chosen = fake_python(bin_dir, f"python{PYTHON}")
    done = run_script(["./bootstrap"], {"PATH": str(bin_dir)}, cwd=unpacked)
    assert done.returncode == 0, done.stderr
    exe, args, layer_dir, pythonpath, _, path = done.stdout.splitlines()
    assert (exe, args) == (str(chosen), "-m sor run")
    assert layer_dir == str(unpacked.resolve())
    assert pythonpath == f"{unpacked.resolve()}/python"
    assert path == str(bin_dir)  # already on PATH: not added again
    assert done.stderr == ""


def test_bootstrap_keeps_the_callers_layer_dir_and_path(unpacked: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3", version="3.10")
    env = {"PATH": str(bin_dir), "SOR_LAYER_DIR": "/elsewhere", "PYTHONPATH": "/mine"}
    done = run_script([str(unpacked / "bootstrap")], env)
    assert done.returncode == 0, done.stderr
    _, _, layer_dir, pythonpath, _, _ = done.stdout.splitlines()
    assert layer_dir == "/elsewhere"
    assert pythonpath == f"{unpacked.resolve()}/python:/mine"
    # python3 is 3.10, the layer was built for this interpreter's version: say so
    if PYTHON != "3.10":
        assert f"built for Python {PYTHON}" in done.stderr
        assert "sor package --python 3.10" in done.stderr


def test_bootstrap_without_python_says_what_to_do(unpacked: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3", version="3.9")  # too old: not taken
    done = run_script([str(unpacked / "bootstrap")], {"PATH": str(bin_dir)})
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no Python >= 3.10 found" in done.stderr
    assert "AWS_LAMBDA_EXEC_WRAPPER=/opt/sor-wrapper" in done.stderr
    assert "SOR_PYTHON" in done.stderr


def test_bootstrap_refuses_a_bad_sor_python(unpacked: Path, tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "SOR_PYTHON": str(tmp_path / "missing")}
    done = run_script([str(unpacked / "bootstrap")], env)
    assert done.returncode == 1
    assert f"SOR_PYTHON={tmp_path / 'missing'} is not a Python >= 3.10" in done.stderr


def test_wrapper_runs_sor_with_the_interpreter_lambda_gives(unpacked: Path, tmp_path: Path) -> None:
    runtime = fake_python(tmp_path / "var" / "lang" / "bin", f"python{PYTHON}")
    on_path = fake_python(tmp_path / "bin", f"python{PYTHON}")
    argv = [str(unpacked / "sor-wrapper"), str(runtime), "/var/runtime/bootstrap.py"]
    done = run_script(argv, {"PATH": str(on_path.parent)})
    assert done.returncode == 0, done.stderr
    exe, args, _, _, sor_python, path = done.stdout.splitlines()
    assert (exe, args, sor_python) == (str(runtime), "-m sor run", str(runtime))
    # so that middlewares run by `#!/usr/bin/env python3` find the same interpreter
    assert path == f"{on_path.parent}:{runtime.parent}"


def test_wrapper_on_a_runtime_that_is_not_python_looks_for_one(
    unpacked: Path, tmp_path: Path
) -> None:
    on_path = fake_python(tmp_path / "bin", f"python{PYTHON}")
    argv = [str(unpacked / "sor-wrapper"), "/var/lang/bin/node", "/var/runtime/index.mjs"]
    done = run_script(argv, {"PATH": str(on_path.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(on_path)


# -- end to end: the unpacked layer hosts functions on a bare interpreter ----------------------


_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/\S+)")


def served_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The invoke URL `sor local serve --port 0` announces once it listens (the port it got)."""
    give_up = time.monotonic() + 30
    while True:
        found = _LISTENING.search(log.read_text())
        if found:
            return found.group(1)
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < give_up, f"no listening line within 30 s\n{log.read_text()}"
        time.sleep(0.05)


@pytest.fixture
def serve_layer(unpacked: Path, bare_python: Path, tmp_path: Path) -> Iterator[Invoker]:
    """Start `sor local serve FUNCTION --bootstrap <unpacked>/bootstrap`; yields an invoker."""
    started: list[subprocess.Popen[bytes]] = []

    def invoke(function: Path, event: Any) -> tuple[Any, str]:
        log = tmp_path / f"serve-{len(started)}.log"
        node_dir = Path(shutil.which("node") or "/usr/bin/node").parent
        # The bare venv first: the bootstrap must find its python3.X, with no sor around it.
        env = clean_env(PATH=f"{bare_python}:{node_dir}:/usr/bin:/bin")
        argv = [sys.executable, "-m", "sor", "local", "serve", str(function)]
        # Port 0: the server binds a free port itself and says which; no port is picked, freed
        # and then bound again (another process could take it in between).
        argv += ["--port", "0", "--timeout", "20", "--bootstrap", str(unpacked / "bootstrap")]
        with log.open("wb") as sink:
            proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=sink)
        started.append(proc)
        url = served_url(proc, log)
        request = urllib.request.Request(url, data=json.dumps(event).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read()), log.read_text()
        except (urllib.error.URLError, ConnectionError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from exc

    yield invoke
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_unpacked_layer_runs_a_python_function_on_a_bare_interpreter(
    serve_layer: Invoker, bare_python: Path
) -> None:
    answer, log = serve_layer(EXAMPLE / "functions" / "python", {"name": "layer"})
    assert isinstance(answer, dict), log
    # the envelope middleware comes from the layer source's sor.yml and middlewares/
    result = answer["result"]
    assert result["message"] == f"hello layer from Python {sys.version.split()[0]}", log
    assert answer["requestId"] == result["requestId"]
    assert Path(result["interpreter"]).parent == bare_python


def test_unpacked_layer_runs_a_node_function(serve_layer: Invoker) -> None:
    answer, log = serve_layer(EXAMPLE / "functions" / "node", {"name": "layer"})
    assert isinstance(answer, dict), log
    assert answer["result"]["message"].startswith("hello layer from Node.js v"), log
    assert answer["requestId"] == answer["result"]["requestId"]


def test_out_must_not_be_a_folder(tmp_path: Path) -> None:
    done = sor("package", "--out", str(tmp_path), env=clean_env())
    assert done.returncode == 1 and "is a folder" in done.stderr
    assert "Sor.PackageError" in done.stderr


def test_layer_source_middlewares_win_and_are_checked(tmp_path: Path) -> None:
    source, root = tmp_path / "src", tmp_path / "root"
    (source / "middlewares" / "helpers").mkdir(parents=True)
    (root / "middlewares").mkdir(parents=True)
    (root / "middlewares" / "warmup").write_text("shipped")
    (source / "middlewares" / "warmup").write_text("#!/bin/sh\n")
    (source / "middlewares" / "warmup").chmod(0o755)
    (source / "middlewares" / "plain").write_text("no execute bit")
    (source / "middlewares" / "helpers" / "lib.sh").write_text("# sourced, not run")
    (tmp_path / "outside").write_text("secret")
    (source / "middlewares" / "link").symlink_to(tmp_path / "outside")
    layer.check_source(source)
    said: list[str] = []
    layer.add_source(root, source, said.append)
    assert (root / "middlewares" / "warmup").read_text() == "#!/bin/sh\n"
    assert os.access(root / "middlewares" / "warmup", os.X_OK)
    assert (root / "middlewares" / "helpers" / "lib.sh").is_file()
    assert not (root / "middlewares" / "link").is_symlink()  # the file's content, not a link
    assert not (root / "sor.yml").exists()
    assert any("middlewares/warmup replaces the one shipped" in s for s in said), said
    assert any("middlewares/plain is not executable" in s for s in said), said
    assert not any("helpers" in s for s in said), said  # only middlewares themselves must run


def test_a_file_that_cannot_be_staged_is_a_package_error(tmp_path: Path) -> None:
    # A folder in the layer source where sor ships a middleware file: the copy cannot succeed.
    source = tmp_path / "src"
    (source / "middlewares" / "warmup").mkdir(parents=True)
    (source / "middlewares" / "warmup" / "run").write_text("#!/bin/sh\n")
    out = tmp_path / "x.zip"
    done = sor("package", str(source), "--out", str(out), env=clean_env())
    assert done.returncode == 1, done.stderr
    assert "Sor.PackageError: cannot stage the layer's files:" in done.stderr
    assert "middlewares/warmup" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_without_an_interpreter_of_the_target_the_build_says_how_to_fix(tmp_path: Path) -> None:
    # No python3.13 on this PATH (pip runs on this interpreter, found by its absolute path).
    target = "3.13" if PYTHON != "3.13" else "3.12"
    out = tmp_path / "x.zip"
    done = sor("package", "--python", target, "--out", str(out), env=clean_env(PATH=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert f"warning: no Python {target} on this machine" in done.stderr
    assert f"install Python {target}" in done.stderr and "build again" in done.stderr
    assert "(0 compiled)" in done.stdout
    with zipfile.ZipFile(out) as zf:
        assert not any(n.endswith(".pyc") for n in zf.namelist())


def test_node_major_must_be_a_maintained_one(tmp_path: Path) -> None:
    done = sor("package", "--node", "18", "--out", str(tmp_path / "x.zip"), env=clean_env())
    assert done.returncode == 1
    assert "Sor.PackageError: --node 18: expected a maintained Node.js major version" in done.stderr
    assert "22, 24" in done.stderr
    assert not (tmp_path / "x.zip").exists()
