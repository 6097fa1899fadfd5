"""Graceful timeout (issue 5), through the embedded emulator and the default ``sor run``.

A function with a 2 s timeout and ``timeouts.grace: 300ms`` whose handler starts a child process
and then sleeps: sor must answer ``Sor.Timeout`` itself (the error JSON, not the emulator's
``Task timed out`` text), leave no process of that invocation behind, and serve the next
invocation. An ``error`` hook still runs inside the grace window and its output is the answer.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.runtime_matrix import pid_alive, wait_gone, write_files

from sor.emulator.answers import InvokeResult
from sor.emulator.emulator import Emulator
from sor.logs import Log

TIMEOUT = 2.0
PY_APP = """\
import os, subprocess, time

def handler(event, context):
    if not event.get("hang"):
        return {"ok": True, "pid": os.getpid()}
    child = subprocess.Popen(["sleep", "60"])
    with open("pids.json", "w") as f:
        f.write('{"runtime": %d, "child": %d}' % (os.getpid(), child.pid))
    time.sleep(30)
    return {"ok": "too late"}
"""
JS_APP = """\
const { spawn } = require('child_process');
const fs = require('fs');
exports.handler = async (event) => {
  if (!event.hang) return { ok: true, pid: process.pid };
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  fs.writeFileSync('pids.json', JSON.stringify({ runtime: process.pid, child: child.pid }));
  await new Promise((resolve) => setTimeout(resolve, 30000));
  return { ok: 'too late' };
};
"""
# An error hook that turns a graceful timeout into an answer of its own, and notes that it ran.
ON_ERROR = """\
#!/bin/sh
error=$(cat)
echo "$1" >> hook.calls
case "$error" in
  *'"Sor.Timeout"'*)
    seen=$(printf '%s' "$error" | sed 's/.*"errorType": *"\\([^"]*\\)".*/\\1/')
    printf '{"errorType":"Handled.Timeout","errorMessage":"the error hook saw %s"}\\n' "$seen" ;;
  *) exit 1 ;;
esac
"""
APPS = {"python": ("app.py", PY_APP), "node": ("app.js", JS_APP)}


def function(root: Path, language: str, *, error_hook: bool = False) -> Path:
    name, source = APPS[language]
    config = [
        "version: 1",
        f"runtime: {{language: {language}, handler: app.handler}}",
        "timeouts: {grace: 300ms}",
    ]
    files = {name: source}
    if error_hook:
        config += ["middlewares:", "  - {name: onerror, path: ./onerror.sh, hooks: [error]}"]
        files["onerror.sh"] = ON_ERROR
    files["sor.yml"] = "\n".join(config) + "\n"
    return write_files(root, files, executable=["onerror.sh"])


@pytest.fixture
def emulator_for(tmp_path: Path) -> Iterator[Callable[[Path], Emulator]]:
    started: list[Emulator] = []

    def make(root: Path) -> Emulator:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_HANDLER"))
        }
        layer = tmp_path / "no-layer"
        layer.mkdir(exist_ok=True)
        env["SOR_LAYER_DIR"] = str(layer)
        emulator = Emulator(root, timeout=TIMEOUT, env=env, log=Log(io.StringIO()))
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def error_of(result: InvokeResult) -> dict[str, object]:
    assert result.function_error is not None, result
    assert not result.body.startswith(b"Task timed out"), "the emulator's deadline came first"
    error = json.loads(result.body)
    assert isinstance(error, dict), error
    return error


def check_graceful_timeout(emulator: Emulator, root: Path) -> None:
    timed_out = emulator.invoke(b'{"hang": true}')
    error = error_of(timed_out)
    assert error["errorType"] == "Sor.Timeout", error
    assert timed_out.error_type() == "Sor.Timeout"
    pids = json.loads((root / "pids.json").read_text())
    # Nothing of the timed-out invocation is left: neither its runtime nor the handler's child.
    assert wait_gone(pids["child"]), f"the handler's child {pids['child']} outlived the timeout"
    assert wait_gone(pids["runtime"]), "the timed-out language runtime still runs"
    following = emulator.invoke(b"{}")
    assert following.status == 200 and following.function_error is None, following
    answer = json.loads(following.body)
    assert answer["ok"] is True and answer["pid"] != pids["runtime"], answer
    assert pid_alive(answer["pid"])


def test_python_handler_past_its_deadline_gets_sor_timeout(
    tmp_path: Path, emulator_for: Callable[[Path], Emulator]
) -> None:
    root = function(tmp_path / "fn", "python")
    check_graceful_timeout(emulator_for(root), root)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_handler_past_its_deadline_gets_sor_timeout(
    tmp_path: Path, emulator_for: Callable[[Path], Emulator]
) -> None:
    root = function(tmp_path / "fn", "node")
    check_graceful_timeout(emulator_for(root), root)


def test_error_hook_runs_inside_the_grace_window_and_replaces_the_error(
    tmp_path: Path, emulator_for: Callable[[Path], Emulator]
) -> None:
    root = function(tmp_path / "fn", "python", error_hook=True)
    emulator = emulator_for(root)
    error = error_of(emulator.invoke(b'{"hang": true}'))
    assert error["errorType"] == "Handled.Timeout", error
    assert error["errorMessage"] == "the error hook saw Sor.Timeout", error
    assert (root / "hook.calls").read_text() == "error\n"
    pids = json.loads((root / "pids.json").read_text())
    assert wait_gone(pids["child"])
    following = emulator.invoke(b"{}")
    assert following.function_error is None, following
    assert (root / "hook.calls").read_text() == "error\n", "the error hook ran on a success"
