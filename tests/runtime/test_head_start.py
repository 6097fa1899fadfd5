"""sor.runtime.head_start: the runtime `_HANDLER` names, spawned before sor's loop is imported."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sor.config.loader import task_root
from sor.logs import Log
from sor.runtime.head_start import HeadStart, head_start


@pytest.fixture
def started() -> Iterator[list[HeadStart]]:
    heads: list[HeadStart] = []
    yield heads
    for head in heads:
        for sig, handler in head.previous.items():
            signal.signal(sig, handler)
        if head.runtime is not None:
            head.runtime.stop()


def _start(heads: list[HeadStart], env: dict[str, str], cwd: Path) -> HeadStart:
    base = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}
    head = head_start({**base, **env}, str(cwd), Log(io.StringIO()))
    heads.append(head)
    return head


@pytest.mark.parametrize("root", [None, ".", "fn", "fn/../fn", "ABSOLUTE"])
def test_the_task_root_is_the_loaders(
    started: list[HeadStart], tmp_path: Path, root: str | None
) -> None:
    (tmp_path / "fn").mkdir()
    folder = tmp_path if root in (None, ".") else tmp_path / "fn"
    (folder / "app.py").write_text("def handler(event, context):\n    return event\n")
    env = {"_HANDLER": "app.handler"}
    if root is not None:
        env["LAMBDA_TASK_ROOT"] = str(tmp_path / "fn") if root == "ABSOLUTE" else root
    head = _start(started, env, tmp_path)
    assert head.runtime is not None
    assert head.runtime.task_root == str(task_root(env, tmp_path))
    assert head.runtime.running
    assert head.runtime.env["SOR_LOAD"] == "deferred"  # no user code before the config agrees


@pytest.mark.parametrize(
    ("handler", "files"),
    [
        ("", ["app.py"]),
        ("app", ["app.py"]),  # no function
        ("index.handler", ["index.js"]),  # not a Python module
        ("pkg.mod.handler", ["pkg/mod.py"]),
        ("../app.handler", ["app.py"]),
        ("/abs.handler", ["app.py"]),
    ],
)
def test_no_guess_without_a_python_module_of_the_task_root(
    started: list[HeadStart], tmp_path: Path, handler: str, files: list[str]
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    head = _start(started, {"_HANDLER": handler}, tmp_path)
    if handler == "pkg.mod.handler":  # a module of a package folder is one
        assert head.runtime is not None
    else:
        assert head.runtime is None


def test_no_guess_without_a_runtime_api(started: list[HeadStart], tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    head = head_start({"_HANDLER": "app.handler"}, str(tmp_path), Log(io.StringIO()))
    started.append(head)
    assert head.runtime is None  # `sor run` is about to refuse: nothing to start


def test_signals_are_kept_until_the_loop_takes_over(
    started: list[HeadStart], tmp_path: Path
) -> None:
    head = _start(started, {}, tmp_path)
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    assert head.signals == [signal.SIGTERM, signal.SIGINT]


def test_sor_run_spawns_before_loading_its_loop_config_and_api(tmp_path: Path) -> None:
    """What `sor run` has imported when it spawns the guessed runtime: none of the modules that
    come after, nor pathlib or typing (docs/performance.md)."""
    (tmp_path / "app.py").write_text("")
    probe = (
        "import sys, sor.runtime.language as language\n"
        "spawn = language.LanguageRuntime.spawn\n"
        "def spy(self):\n"
        "    print(sorted(m for m in sys.modules if m in WATCH or m.startswith('sor.config.')))\n"
        "    raise SystemExit(0)\n"
        "WATCH = {'pathlib', 'typing', 'sor.runtime.loop', 'sor.runtime.api', 'json',\n"
        "         'sor.runtime.invocation'}\n"
        "language.LanguageRuntime.spawn = spy\n"
        "from sor.cli import main\n"
        "main(['run'])\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
        "_HANDLER": "app.handler",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    # The loader only for its task root: not the config modules it imports when it loads.
    assert out.stdout.strip() == "['sor.config.loader', 'sor.config.model']"
