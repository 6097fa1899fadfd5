"""LanguageRuntime: real language runtime processes (the Python adapter, sh), real pipes."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import RuntimeApiServer

from sor.config.model import Config, RuntimeSettings
from sor.errors import ConfigError, FunctionError, InvocationTimeout, RuntimeExited
from sor.logs import Log
from sor.runtime.api import RuntimeApiClient
from sor.runtime.invocation import Invoker
from sor.runtime.language import LanguageRuntime, runtime_command

HANDLERS = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time

    def echo(event, context):
        return {"event": event, "id": context.aws_request_id}

    def exit3(event, context):
        print("dying words", file=sys.stderr, flush=True)
        os._exit(3)

    def sigkill(event, context):
        os.kill(os.getpid(), signal.SIGKILL)

    def forger(event, context):
        for i in range(500):
            print(json.dumps({"type": "result", "id": context.aws_request_id, "result": "forged"}))
        try:
            os.write(4, b'{"type":"result","id":"%s","result":"forged"}\\n'
                     % context.aws_request_id.encode())
        except OSError:
            pass
        return "genuine"

    def sleeper(event, context):
        child = subprocess.Popen(["sleep", "30"])
        with open(event["pidfile"], "w") as f:
            f.write(str(child.pid))
        time.sleep(30)

    def unreachable(seconds, pidfile):
        # What sor cannot stop (sor.process.reaper): a process with an empty environment (no
        # mark) that left the tree (its parent exits at once), keeping our stderr open.
        sh = "sleep %d & echo $! > %s" % (seconds, pidfile)
        subprocess.run(["/bin/sh", "-c", sh], env={}, start_new_session=True, check=True)

    def escaper(event, context):
        # Leaves the process group and keeps our stderr open, silent, for 30 s.
        unreachable(30, event["pidfile"])
        os._exit(3)

    def big(event, context):
        return {"echo": event["data"], "len": len(event["data"])}

    def lingerer(event, context):
        # Leaves the process group with our stderr open for 8 s, then runs past its deadline.
        unreachable(8, event["pidfile"])
        time.sleep(30)
    """
)

MARKED = textwrap.dedent(
    """
    import os
    with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
        log.write(f"{os.getpid()}\\n")

    def echo(event, context):
        return {"pid": os.getpid(), "load": os.environ.get("SOR_LOAD")}
    """
)


def now_plus(seconds: float) -> float:
    return time.monotonic() + seconds


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return tmp_path


def python_runtime(
    task_root: Path, handler: str, log: Log | None = None, **env: str
) -> LanguageRuntime:
    settings = RuntimeSettings(language="python", handler=handler)
    return LanguageRuntime(
        settings, task_root=task_root, env={**os.environ, **env}, log=log or Log(io.StringIO())
    )


def ctx(request_id: str = "req-1", **extra: Any) -> dict[str, Any]:
    return {"aws_request_id": request_id, "deadline_ms": int(time.time() * 1000) + 5000, **extra}


def test_runtime_command_per_language() -> None:
    py = runtime_command(RuntimeSettings(language="python", handler="h.f"))
    assert py[0] == sys.executable and py[1].endswith("runtimes/python/sor_runtime.py")
    node = runtime_command(RuntimeSettings(language="node", handler="h.f"))
    assert node[0] == shutil.which("node") and node[1].endswith("runtimes/node/sor_runtime.js")
    custom = runtime_command(RuntimeSettings(language="python", handler="h.f", command=("py3",)))
    assert custom[0] == "py3"
    assert runtime_command(RuntimeSettings(language="exec", command=("./rt", "-v"))) == [
        "./rt",
        "-v",
    ]
    with pytest.raises(ConfigError, match=r"runtime\.command"):
        runtime_command(RuntimeSettings(language="exec"))
    with pytest.raises(ConfigError, match=r"runtime\.handler"):
        runtime_command(RuntimeSettings(language="python"))


def test_invoke_returns_the_result(task_root: Path) -> None:
    rt = python_runtime(task_root, "handlers.echo")
    try:
        rt.start(now_plus(10))
        assert rt.invoke({"a": "é"}, ctx("r1"), now_plus(5)).value() == {
            "event": {"a": "é"},
            "id": "r1",
        }
        assert rt.invoke([1, 2], ctx("r2"), now_plus(5)).value() == {"event": [1, 2], "id": "r2"}
        assert rt.starts == 1
    finally:
        rt.stop()
    assert not rt.running


def test_import_failure_is_the_init_error(task_root: Path) -> None:
    rt = python_runtime(task_root, "nosuchmodule.handler")
    with pytest.raises(FunctionError) as info:
        rt.start(now_plus(10))
    assert info.value.error_type == "Runtime.ImportModuleError"
    assert "Unable to import module 'nosuchmodule'" in info.value.message
    assert not rt.running


@pytest.mark.parametrize(
    ("handler", "how"), [("handlers.exit3", "exit code 3"), ("handlers.sigkill", "signal SIGKILL")]
)
def test_a_dead_runtime_is_reported_and_restarted(task_root: Path, handler: str, how: str) -> None:
    rt = python_runtime(task_root, handler)
    try:
        rt.start(now_plus(10))
        first = rt.pid
        with pytest.raises(RuntimeExited) as info:
            rt.invoke({}, ctx(), now_plus(5))
        assert how in info.value.message
        assert handler in info.value.message
        if handler.endswith("exit3"):
            assert "dying words" in info.value.message
        assert info.value.error_type == "Sor.RuntimeExited"
        # The next invocation gets a fresh runtime (which dies the same way, but answers).
        with pytest.raises(RuntimeExited):
            rt.invoke({}, ctx("r2"), now_plus(5))
        assert rt.starts == 2 and rt.pid != first
    finally:
        rt.stop()


def test_killed_between_invocations_then_next_works(task_root: Path) -> None:
    log = io.StringIO()
    rt = python_runtime(task_root, "handlers.echo", Log(log))
    try:
        rt.start(now_plus(10))
        assert rt.pid is not None
        os.kill(rt.pid, signal.SIGKILL)
        assert _gone(rt.pid)
        # The invocation was not running when the runtime died: it gets a fresh runtime.
        assert rt.invoke({"x": 1}, ctx("r2"), now_plus(5)).value() == {
            "event": {"x": 1},
            "id": "r2",
        }
        assert rt.starts == 2
        assert "restarting the python language runtime" in log.getvalue()
    finally:
        rt.stop()


def test_stdout_and_fd4_writes_cannot_forge_a_result(task_root: Path) -> None:
    log = io.StringIO()
    rt = python_runtime(task_root, "handlers.forger", Log(log))
    try:
        rt.start(now_plus(10))
        assert rt.invoke({}, ctx("r1"), now_plus(10)).value() == "genuine"
        assert rt.invoke({}, ctx("r2"), now_plus(10)).value() == "genuine"
    finally:
        rt.stop()


def test_timeout_kills_the_process_group_and_restarts(task_root: Path, tmp_path: Path) -> None:
    rt = python_runtime(task_root, "handlers.sleeper")
    pidfile = tmp_path / "grandchild.pid"
    try:
        rt.start(now_plus(10))
        began = time.monotonic()
        with pytest.raises(InvocationTimeout) as info:
            rt.invoke({"pidfile": str(pidfile)}, ctx(), now_plus(1.0), function_timeout=1.3)
        assert time.monotonic() - began < 5
        assert "1.30 seconds" in info.value.message and "handlers.sleeper" in info.value.message
        assert "before Lambda's deadline" in info.value.message
        grandchild = int(pidfile.read_text())
        assert _gone(grandchild), "the handler's own child survived the timeout"
        assert not rt.running
    finally:
        rt.stop()


def _gone(pid: int, wait: float = 3.0) -> bool:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True  # dead, waiting for its (reaped-by-init) parent
        time.sleep(0.02)
    return False


def exec_runtime(task_root: Path, script: str) -> LanguageRuntime:
    (task_root / "rt.sh").write_text(script)
    settings = RuntimeSettings(language="exec", command=("sh", str(task_root / "rt.sh")))
    return LanguageRuntime(
        settings, task_root=task_root, env=dict(os.environ), log=Log(io.StringIO())
    )


def test_garbage_on_fd4_is_a_clear_error_and_a_restart(task_root: Path) -> None:
    rt = exec_runtime(
        task_root,
        """printf '{"type":"ready"}\\n' >&4
read line <&3
echo 'this is not json' >&4
sleep 30
""",
    )
    try:
        rt.start(now_plus(10))
        with pytest.raises(RuntimeExited, match=r"broke the protocol.*not JSON"):
            rt.invoke({}, ctx(), now_plus(5))
        assert not rt.running
        with pytest.raises(RuntimeExited, match="broke the protocol"):
            rt.invoke({}, ctx(), now_plus(5))
        assert rt.starts == 2
    finally:
        rt.stop()


def test_oversized_answer_is_skipped_and_the_runtime_kept_warm(task_root: Path) -> None:
    # 15 MB: more than twice MAX_MESSAGE, so the skipping spans several bounded reads.
    rt = exec_runtime(
        task_root,
        """printf '{"type":"ready"}\\n' >&4
read line <&3
head -c 15000000 /dev/zero | tr '\\0' 'x' >&4
printf '\\n' >&4
read line <&3
seal=$(printf '%s' "$line" | sed 's/.*"seal": *"\\([0-9a-f]*\\)".*/\\1/')
printf '{"type":"result","id":"req-2","seal":"%s","result":"small"}\\n' "$seal" >&4
sleep 30
""",
    )
    try:
        rt.start(now_plus(10))
        pid = rt.pid
        with pytest.raises(FunctionError) as info:
            rt.invoke({}, ctx(), now_plus(10))
        assert info.value.payload()["errorType"] == "Function.ResponseSizeTooLarge"
        assert "(6291556 bytes)" in info.value.payload()["errorMessage"]
        assert rt.running and rt.pid == pid and rt.starts == 1
        assert rt.invoke({}, ctx("req-2"), now_plus(10)).value() == "small"
    finally:
        rt.stop()


def test_oversized_python_result_keeps_the_runtime(task_root: Path) -> None:
    rt = python_runtime(task_root, "handlers.big")
    try:
        rt.start(now_plus(10))
        with pytest.raises(FunctionError) as info:
            rt.invoke({"data": "x" * (8 * 1024 * 1024)}, ctx(), now_plus(20))
        assert info.value.error_type == "Function.ResponseSizeTooLarge"
        assert rt.invoke({"data": "ok"}, ctx("req-2"), now_plus(10)).value() == {
            "echo": "ok",
            "len": 2,
        }
        assert rt.starts == 1
    finally:
        rt.stop()


def test_oversized_ready_message_still_breaks_the_protocol(task_root: Path) -> None:
    rt = exec_runtime(task_root, "head -c 8000000 /dev/zero | tr '\\0' 'x' >&4\nsleep 30\n")
    with pytest.raises(RuntimeExited, match="longer than"):
        rt.start(now_plus(10))


def test_runtime_that_dies_before_ready(task_root: Path) -> None:
    rt = exec_runtime(task_root, "echo 'cannot start, missing thing' >&2\nexit 7\n")
    with pytest.raises(RuntimeExited) as info:
        rt.start(now_plus(10))
    assert "exit code 7" in info.value.message
    assert "cannot start, missing thing" in info.value.message


def test_six_megabyte_event_and_response(task_root: Path) -> None:
    # On python3.12 and later non-ASCII stays UTF-8 in a response (escaped, it would be 18 MB).
    rt = python_runtime(task_root, "handlers.big", AWS_EXECUTION_ENV="AWS_Lambda_python3.12")
    data = "é" * (3 * 1024 * 1024)  # 6 MB of UTF-8
    try:
        rt.start(now_plus(10))
        result = rt.invoke({"data": data}, ctx(), now_plus(20)).value()
        assert result["len"] == len(data) and result["echo"] == data
    finally:
        rt.stop()


LEAK_CHECK = textwrap.dedent(
    """
    import io, os, sys, threading, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from support.runtime_api_server import RuntimeApiServer
    from sor.config.model import Config, RuntimeSettings
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime
    from sor.logs import Log
    from sor.runtime.api import RuntimeApiClient

    def children():
        found = set()
        for task in Path("/proc/self/task").iterdir():
            found.update(int(p) for p in (task / "children").read_text().split())
        return found

    server = RuntimeApiServer()
    api = RuntimeApiClient(server.address)
    rt = LanguageRuntime(RuntimeSettings(handler="handlers.echo"), task_root=Path(sys.argv[1]),
                         env=dict(os.environ), log=Log(io.StringIO()))
    invoker = Invoker(Config(), rt, api, log=Log(io.StringIO()), env=dict(os.environ))
    rt.start(time.monotonic() + 10)

    def round_of(n):
        pending = [server.submit({"i": i}) for i in range(n)]
        for _ in range(n):
            assert invoker.handle(api.next()) == "success"
        for p in pending:
            assert server.wait_answer(p).kind == "response"

    round_of(10)  # warm: the keep-alive connection and the server's thread exist now
    fds, threads, kids = sorted(os.listdir("/proc/self/fd")), threading.active_count(), children()
    round_of(1000)
    assert sorted(os.listdir("/proc/self/fd")) == fds, (fds, os.listdir("/proc/self/fd"))
    assert threading.active_count() <= threads
    assert children() == kids
    assert rt.starts == 1
    rt.stop(); api.close(); server.close()
    print("no leak")
    """
)


def test_thousand_invocations_leak_nothing(task_root: Path) -> None:
    # In a process of its own: the descriptors, threads and children of a shared test worker
    # change with whatever other tests left running there.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LEAK_CHECK,
            str(task_root),
            str(Path(__file__).resolve().parents[1]),
        ],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.strip() == b"no leak"


class _BrokenPipeline:
    """A pipeline with a bug: the invoker must still answer, and keep answering."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, payload: Any, context: Any, handler: Any, *args: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug in the pipeline")
        return handler(payload)


def test_an_unexpected_exception_still_gets_one_answer(task_root: Path) -> None:
    server = RuntimeApiServer()
    api = RuntimeApiClient(server.address)
    rt = python_runtime(task_root, "handlers.echo")
    log = io.StringIO()
    invoker = Invoker(
        Config(), rt, api, log=Log(log), env=dict(os.environ), pipeline=_BrokenPipeline()
    )
    try:
        first, second = server.submit({"n": 1}), server.submit({"n": 2})
        assert invoker.handle(api.next()) == "Sor.Error"
        assert invoker.handle(api.next()) == "success"
        error = server.wait_answer(first).json()
        assert error["errorType"] == "Sor.Error"
        assert "RuntimeError: a bug in the pipeline" in error["errorMessage"]
        assert server.wait_answer(second).json()["event"] == {"n": 2}
        assert log.getvalue().count("\tinvocation") == 2
    finally:
        rt.stop()
        api.close()
        server.close()


def test_spawn_then_wait_ready_runs_in_the_task_root(task_root: Path) -> None:
    rt = python_runtime(task_root, "handlers.echo")
    here = os.getcwd()
    try:
        rt.spawn()  # returns without waiting for `ready`: sor finishes its own init meanwhile
        assert rt.running and rt.pid is not None
        assert os.getcwd() == here  # the spawn's cwd is the child's, not ours
        assert Path(os.readlink(f"/proc/{rt.pid}/cwd")) == task_root
        rt.wait_ready(now_plus(10))
        assert rt.invoke({"a": 1}, ctx("r1"), now_plus(5)).value() == {
            "event": {"a": 1},
            "id": "r1",
        }
        assert rt.starts == 1
    finally:
        rt.stop()


def test_wait_ready_without_spawn_is_a_clear_error(task_root: Path) -> None:
    rt = python_runtime(task_root, "handlers.echo")
    with pytest.raises(RuntimeExited, match="was not started"):
        rt.wait_ready(now_plus(1))


def test_a_grandchild_keeping_stderr_leaks_no_pump(task_root: Path, tmp_path: Path) -> None:
    rt = python_runtime(task_root, "handlers.escaper")
    pids = []
    try:
        for n in range(2):
            rt.start(now_plus(10))
            assert rt._proc is not None
            pump = rt._proc.pump
            assert pump is not None
            began = time.monotonic()
            with pytest.raises(RuntimeExited, match="exit code 3"):
                rt.invoke({"pidfile": str(tmp_path / f"pid{n}")}, ctx(), now_plus(10))
            pids.append(int((tmp_path / f"pid{n}").read_text()))
            assert os.path.exists(f"/proc/{pids[-1]}")  # still holding the pipe
            assert not pump.is_alive()  # the pump thread ended anyway
            assert time.monotonic() - began < 5
            assert pump._stop_r == pump._stop_w == -1  # its stop pipe is closed too
    finally:
        rt.stop()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_timeout_is_raised_without_waiting_for_an_escaped_stderr(
    task_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However long stderr may be waited for elsewhere, a kill path raises first: with the wait
    # at 20 s, waiting for this pipe's end (held 8 s by a grandchild) would fail the bound.
    monkeypatch.setattr("sor.runtime.language._PUMP_JOIN", 20.0)
    rt = python_runtime(task_root, "handlers.lingerer")
    pidfile = tmp_path / "pid"
    try:
        rt.start(now_plus(10))
        deadline = now_plus(1.0)
        with pytest.raises(InvocationTimeout):
            rt.invoke({"pidfile": str(pidfile)}, ctx(), deadline)
        assert time.monotonic() - deadline < 5
        holder = int(pidfile.read_text())
        assert os.path.exists(f"/proc/{holder}")  # the pipe is still held: no EOF was awaited
    finally:
        rt.stop(graceful=False)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def deferred_runtime(task_root: Path) -> LanguageRuntime:
    (task_root / "marked.py").write_text(MARKED)
    settings = RuntimeSettings(language="python", handler="marked.echo")
    return LanguageRuntime(
        settings,
        task_root=task_root,
        env=dict(os.environ),
        log=Log(io.StringIO()),
        defer_load=True,
    )


def test_a_deferred_runtime_runs_no_user_code_until_load(task_root: Path) -> None:
    rt = deferred_runtime(task_root)
    plain = python_runtime(task_root, "marked.echo")
    assert rt.env == {**plain.env, "SOR_LOAD": "deferred"}  # the only difference
    try:
        rt.spawn()
        time.sleep(0.5)  # time enough to import a module it was not told to load
        assert rt.running
        assert not (task_root / "imports.log").exists()
        rt.load()
        assert rt.wait_ready(now_plus(10)) is True
        body = rt.invoke({}, ctx(), now_plus(10)).value()
        assert (task_root / "imports.log").read_text().split() == [str(body["pid"])]
    finally:
        rt.stop()


def test_a_deferred_runtime_stopped_before_load_never_imports(task_root: Path) -> None:
    rt = deferred_runtime(task_root)
    rt.spawn()
    time.sleep(0.3)
    code = rt.stop(graceful=False)
    assert not (task_root / "imports.log").exists()
    assert code is not None
    assert rt.last_stderr == []  # it left quietly


def test_a_deferred_runtime_restarts_loaded(task_root: Path) -> None:
    rt = deferred_runtime(task_root)
    try:
        rt.start(now_plus(10))  # start = spawn, load, wait_ready: a restart does not wait
        first = rt.invoke({}, ctx(), now_plus(10)).value()["pid"]
        rt.stop()
        assert rt.invoke({}, ctx(), now_plus(10)).value()["pid"] != first
    finally:
        rt.stop()


def test_wait_ready_returns_when_the_wake_fd_is_readable(task_root: Path) -> None:
    rt = deferred_runtime(task_root)  # never loaded: it would never say ready
    r, w = os.pipe()
    try:
        rt.spawn()
        os.write(w, b"x")
        began = time.monotonic()
        assert rt.wait_ready(now_plus(30), wake_fd=r) is False
        assert time.monotonic() - began < 5
        assert rt.running
    finally:
        rt.stop(graceful=False)
        os.close(r)
        os.close(w)
