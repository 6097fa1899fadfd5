"""sor.runtime.head_start: the runtime `_HANDLER` names, spawned before sor's loop is imported."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sor.logs import Log
from sor.process.spawn import Forked
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
    try:
        head = head_start({**base, **env}, str(cwd), Log(io.StringIO()))
    except Forked as child:  # the Python runtime forked from this test: it is that, never pytest
        code = 1
        try:
            code = child.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    heads.append(head)
    return head


@pytest.mark.parametrize("root", [None, ".", "fn", "fn/../fn", "ABSOLUTE"])
def test_the_runtime_runs_in_the_task_root(
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
    assert head.runtime.task_root == str(folder)  # LAMBDA_TASK_ROOT, relative to the cwd
    assert head.runtime.running
    assert head.runtime.env["SOR_LOAD"] == "deferred"  # no user code before the config agrees


@pytest.mark.parametrize(
    ("handler", "files", "language"),
    [
        ("app.handler", ["app.py"], "python"),
        ("pkg.mod.handler", ["pkg/mod.py"], "python"),
        ("pkg.handler", ["pkg/__init__.py"], "python"),
        ("app.handler", ["app.py", "app.js"], "python"),  # the usual case first
        ("index.handler", ["index.js"], "node"),
        ("index.handler", ["index.mjs"], "node"),
        ("src/index.handler", ["src/index.cjs"], "node"),
        ("index.a.b", ["index.js"], "node"),  # a nested export: the file ends at the first dot
        ("", ["app.py"], None),
        ("app", ["app.py"], None),  # no function
        ("index.handler", ["index.ts"], None),
        ("../app.handler", ["app.py"], None),
        ("/abs.handler", ["app.py"], None),
        ("bin/run.sh", ["bin/run.sh"], None),  # an exec runtime's: never guessed
    ],
)
def test_the_runtime_guessed_is_the_one_of_the_handlers_file(
    started: list[HeadStart], tmp_path: Path, handler: str, files: list[str], language: str | None
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    head = _start(started, {"_HANDLER": handler}, tmp_path)
    if language is None:
        assert head.runtime is None
    else:
        assert head.runtime is not None
        assert head.runtime.settings.language == language
        assert head.runtime.running
        assert head.runtime.env["SOR_LOAD"] == "deferred"


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
        "def spy(self, **_):\n"
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


PROBE = """
import os, signal, sys, time

VARYING = ("SOR_PROCESS_MARKS", "_X_AMZN_TRACE_ID")  # per process, per invocation

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    return {
        "pid": os.getpid(),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k not in VARYING},
        "marked": bool(os.environ.get("SOR_PROCESS_MARKS")),
        "signals": [repr(signal.getsignal(s)) for s in (2, 13, 15, 25)],
        "path": sys.path,
        "fds": len(fds),
        "stdin": os.readlink("/proc/self/fd/0"),
        "sor": sorted(m for m in sys.modules if m == "sor" or m.startswith("sor.")),
        "leader": os.getsid(0) == os.getpid(),
    }
"""


def test_the_forked_runtime_is_the_one_a_restart_starts(tmp_path: Path) -> None:
    """What the handler sees of its process is the same in the runtime forked from sor's start
    (sor.process.spawn.fork) and in the one sor starts anew after a timeout killed it."""
    from sor.emulator.emulator import Emulator

    (tmp_path / "probe.py").write_text(PROBE)
    env = {"PATH": os.environ["PATH"]}
    emulator = Emulator(
        tmp_path, timeout=1.0, env=env, log=Log(io.StringIO()), handler="probe.handler"
    )
    emulator.start()
    try:
        first = emulator.invoke(b"{}")
        assert first.function_error is None, first.body
        assert emulator.invoke(b'{"sleep": 5}').error_type() == "Sor.Timeout"
        again = emulator.invoke(b"{}")
        assert again.function_error is None, again.body
    finally:
        emulator.stop()
    forked, spawned = json.loads(first.body), json.loads(again.body)
    assert forked.pop("pid") != spawned.pop("pid")
    assert forked == spawned
    assert forked["sor"] == [] and forked["leader"] and forked["marked"]
    assert forked["stdin"] == "/dev/null"
    assert forked["argv"][0].endswith("sor_runtime.py")


NODE_HANDLER = """
const fs = require('fs');
fs.appendFileSync(__dirname + '/loads.log', process.pid + '\\n');
exports.handler = async (event) => ({ by: 'node', pid: process.pid });
"""


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ("runtime: {language: node, handler: index.handler}", True),
        ("runtime: {language: python, handler: app.handler}", False),  # the config says otherwise
    ],
)
def test_a_node_runtime_is_guessed_and_kept_only_when_the_config_agrees(
    tmp_path: Path, config: str, kept: bool
) -> None:
    from sor.emulator.emulator import Emulator

    (tmp_path / "index.js").write_text(NODE_HANDLER)
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {'by': 'python'}\n")
    (tmp_path / "sor.yml").write_text(f"version: 1\n{config}\n")
    out = io.StringIO()
    env = {"PATH": os.environ["PATH"]}
    emulator = Emulator(tmp_path, timeout=10, env=env, log=Log(out), handler="index.handler")
    emulator.start()
    try:
        answer = json.loads(emulator.invoke(b"{}").body)
    finally:
        emulator.stop()
    started = "runtime_started=before-config" if kept else "runtime_started=after-config"
    assert started in out.getvalue()
    if kept:  # the handler's module was loaded once, by the process that answered
        assert answer["by"] == "node"
        assert (tmp_path / "loads.log").read_text().split() == [str(answer["pid"])]
    else:  # the guess was stopped before it loaded anything of the user's
        assert answer["by"] == "python"
        assert not (tmp_path / "loads.log").exists()


def test_a_guess_that_cannot_start_is_no_guess(started: list[HeadStart], tmp_path: Path) -> None:
    """No `node` to run an index.js: the config may want another runtime (an exec one, say),
    so the head start says nothing and guesses nothing; the config decides (reviewer's B1)."""
    (tmp_path / "index.js").write_text("")
    env = {"_HANDLER": "index.handler", "PATH": "/nonexistent", "SOR_LAYER_DIR": str(tmp_path)}
    assert _start(started, env, tmp_path).runtime is None
