"""One middleware hook at a time: exec mode and persistent mode, with real executables."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sor.config.model import Middleware
from sor.errors import MiddlewareError, MiddlewareTimeout
from sor.logs import Log
from sor.middleware.exec_mode import ExecHooks
from sor.middleware.hook import MAX_OUTPUT, HookResult
from sor.middleware.persistent_mode import PersistentHooks, request_line
from sor.payload import encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook

CONTEXT = {"aws_request_id": "req-1", "deadline_ms": 1234567, "function_name": "fn"}
ENV = {"PATH": os.environ.get("PATH", os.defpath), "FUNCTION_SETTING": "on"}


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def py(body: str) -> str:
    return f"#!{sys.executable}\nimport json, os, sys, time\n{body}"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def wait_gone(pid: int, within: float = 3.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def exec_runner(path: Path, log: Log | None = None, name: str = "mw") -> ExecHooks:
    mw = Middleware(name=name, path=path)
    return ExecHooks(mw, log=log or Log(io.StringIO()), env=ENV)


# --- exec mode ---------------------------------------------------------------------------------


def test_timeout_kills_the_hook_and_its_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    exe = write_exe(
        tmp_path / "slow",
        f"#!/bin/sh\nsleep 30 &\necho $! > {pidfile}\nsleep 30\n",
    )
    runner = exec_runner(exe, name="slowpoke")
    began = time.monotonic()
    with pytest.raises(MiddlewareTimeout) as info:
        runner.call("before", {"a": 1}, CONTEXT, 0.3)
    assert time.monotonic() - began < 3
    assert "slowpoke" in info.value.message and "before" in info.value.message
    assert info.value.payload()["errorType"] == "Sor.MiddlewareTimeout"
    assert wait_gone(int(pidfile.read_text()))


def test_exit_status_1_is_a_failure_with_the_stderr_tail(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "bad", "#!/bin/sh\necho 'first line' >&2\necho 'no token' >&2\nexit 1\n"
    )
    log_stream = io.StringIO()
    with pytest.raises(MiddlewareError) as info:
        exec_runner(exe, Log(log_stream), name="auth").call("before", {}, CONTEXT, 5)
    err = info.value
    assert not isinstance(err, MiddlewareTimeout)
    assert err.error_type == "Sor.MiddlewareError"
    assert "auth (before): ended with exit code 1;" in err.message
    assert "no token" in err.message and err.stack_trace == ["first line", "no token"]
    assert "[auth] no token" in log_stream.getvalue()


def test_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    exe = write_exe(tmp_path / "suicidal", "#!/bin/sh\nkill -TERM $$\n")
    with pytest.raises(MiddlewareError, match=r"suicidal \(error\): ended with signal SIGTERM"):
        exec_runner(exe, name="suicidal").call("error", {}, CONTEXT, 5)


def test_output_that_is_not_json_is_a_failure(tmp_path: Path) -> None:
    exe = write_exe(tmp_path / "chatty", "#!/bin/sh\necho 'parsing...' >&2\necho 'hello there'\n")
    with pytest.raises(MiddlewareError) as info:
        exec_runner(exe, name="chatty").call("after", {}, CONTEXT, 5)
    assert "chatty (after)" in info.value.message
    assert "not JSON" in info.value.message and "parsing..." in info.value.message


def test_too_much_output_is_a_failure(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "flood",
        py(
            "sys.stderr.write('flooding\\n'); sys.stderr.flush()\n"
            "sys.stdout.write('[' + '1,' * (25 * 1024 * 1024) + '1]')\n"
        ),
    )
    began = time.monotonic()
    with pytest.raises(MiddlewareError) as info:
        exec_runner(exe, name="flood").call("before", {}, CONTEXT, 10)
    assert time.monotonic() - began < 5
    assert not isinstance(info.value, MiddlewareTimeout)
    assert f"more than {MAX_OUTPUT} bytes" in info.value.message
    assert "flood (before)" in info.value.message and "flooding" in info.value.message


def test_replace_unchanged_and_trailing_newline(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "m",
        py(
            "p = json.load(sys.stdin)\n"
            "if p.get('keep'): sys.exit(0)\n"
            "p['seen'] = sys.argv[1]\nprint(json.dumps(p))\n"
        ),
    )
    runner = exec_runner(exe)
    assert runner.call("before", {"x": 1}, CONTEXT, 5) == HookResult(
        "replace", {"x": 1, "seen": "before"}
    )
    assert runner.call("after", {"keep": True}, CONTEXT, 5).kind == "unchanged"


def test_exit_100_answers_now_from_before_and_error(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "early", "#!/bin/sh\ncat >/dev/null\necho '{\"statusCode\": 204}'\nexit 100\n"
    )
    runner = exec_runner(exe)
    assert runner.call("before", {}, CONTEXT, 5) == HookResult("respond", {"statusCode": 204})
    assert runner.call("error", {}, CONTEXT, 5) == HookResult("respond", {"statusCode": 204})
    silent = write_exe(tmp_path / "silent", "#!/bin/sh\nexit 100\n")
    assert exec_runner(silent).call("before", {"e": 1}, CONTEXT, 5) == HookResult(
        "respond", {"e": 1}
    )


def test_exit_100_from_after_is_a_failure(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "early",
        "#!/bin/sh\ncat >/dev/null\necho 'answering' >&2\necho '{\"statusCode\": 204}'\nexit 100\n",
    )
    with pytest.raises(MiddlewareError) as info:
        exec_runner(exe, name="early").call("after", {"statusCode": 200}, CONTEXT, 5)
    assert not isinstance(info.value, MiddlewareTimeout)
    message = info.value.message
    assert message.startswith("middleware early (after): ended with exit code 100")
    assert "only before and error hooks may answer now" in message and "answering" in message


DEEP_JSON = "print('[' * 100000 + ']' * 100000)\n"


@pytest.mark.parametrize("hook", ["before", "after", "error"])
def test_output_nested_too_deeply_is_a_failure(tmp_path: Path, hook: Hook) -> None:
    exe = write_exe(tmp_path / "deep", py(DEEP_JSON))
    with pytest.raises(MiddlewareError) as info:
        exec_runner(exe, name="deep").call(hook, {}, CONTEXT, 5)
    assert f"middleware deep ({hook}): wrote output that is not JSON" in info.value.message
    assert "nested too deeply" in info.value.message


def test_payload_with_a_lone_surrogate_reaches_the_hook(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "echo",
        py("raw = sys.stdin.buffer.read()\nraw.decode('utf-8')\nprint(raw.decode())\n"),
    )
    payload = {"body": "bad \ud800 half", "name": "caf\u00e9"}
    assert exec_runner(exe).call("before", payload, CONTEXT, 5) == HookResult("replace", payload)


def test_payload_that_cannot_be_json_is_a_failure_naming_the_hook(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exe = write_exe(tmp_path / "m", f"#!/bin/sh\ntouch {marker}\n")
    deep: list[object] = []
    for _ in range(100000):
        deep = [deep]
    for payload in (deep, {"when": object()}):
        with pytest.raises(MiddlewareError, match=r"^middleware m \(before\): cannot be given"):
            exec_runner(exe, name="m").call("before", payload, CONTEXT, 5)
    assert not marker.exists()


def test_hook_environment(tmp_path: Path) -> None:
    exe = write_exe(
        tmp_path / "env",
        py(
            "keys = ['SOR_HOOK', 'SOR_REQUEST_ID', 'SOR_DEADLINE_MS', 'SOR_FUNCTION_NAME',"
            " 'FUNCTION_SETTING']\n"
            "print(json.dumps({k: os.environ.get(k) for k in keys} | {'argv': sys.argv[1:]}))\n"
        ),
    )
    result = exec_runner(exe).call("error", {}, CONTEXT, 5)
    assert result.payload == {
        "SOR_HOOK": "error",
        "SOR_REQUEST_ID": "req-1",
        "SOR_DEADLINE_MS": "1234567",
        "SOR_FUNCTION_NAME": "fn",
        "FUNCTION_SETTING": "on",
        "argv": ["error"],
    }
    unset = {"aws_request_id": None, "deadline_ms": None, "function_name": None}
    result = exec_runner(exe).call("before", {}, unset, 5)
    assert result.payload["SOR_REQUEST_ID"] == ""
    assert result.payload["SOR_DEADLINE_MS"] == ""
    assert result.payload["SOR_FUNCTION_NAME"] == ""
    assert exec_runner(exe).call("before", {}, {}, 5).payload["SOR_FUNCTION_NAME"] == ""


def test_context_value_that_cannot_be_in_an_environment(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exe = write_exe(tmp_path / "m", f"#!/bin/sh\ntouch {marker}\n")
    for name in ("bad\0name", "bad\ud800name"):
        context = dict(CONTEXT, function_name=name)
        with pytest.raises(MiddlewareError, match=r"^middleware m \(after\): .*SOR_FUNCTION_NAME"):
            exec_runner(exe, name="m").call("after", {}, context, 5)
    assert not marker.exists()


def test_missing_or_not_executable(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    for path in (plain, tmp_path / "absent"):
        with pytest.raises(MiddlewareError) as info:
            exec_runner(path, name="ghost").call("before", {}, CONTEXT, 5)
        assert "ghost (before)" in info.value.message and str(path) in info.value.message


def test_no_time_left_is_a_timeout_without_a_process(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exe = write_exe(tmp_path / "m", f"#!/bin/sh\ntouch {marker}\n")
    with pytest.raises(MiddlewareTimeout):
        exec_runner(exe).call("before", {}, CONTEXT, -0.5)
    assert not marker.exists()


# --- persistent mode ---------------------------------------------------------------------------

SERVER = py(
    "assert sys.argv[1:] == ['persistent'], sys.argv\n"
    "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
    "for line in sys.stdin:\n"
    "    msg = json.loads(line)\n"
    "    p = msg['payload']\n"
    "    cmd = p.get('cmd') if isinstance(p, dict) else None\n"
    "    if cmd == 'sleep': time.sleep(30)\n"
    "    if cmd == 'linger':\n"
    "        import subprocess\n"
    # out of sor's reach (sor.process.reaper): no environment, and its parent exits at once
    "        sh = 'sleep 8 & echo $! > ' + p['pidfile']\n"
    "        subprocess.run(['/bin/sh', '-c', sh], env={}, start_new_session=True)\n"
    "        time.sleep(30)\n"
    "    if cmd == 'die': sys.stderr.write('dying\\n'); sys.stderr.flush(); os._exit(3)\n"
    "    if cmd == 'garbage': print('not json', flush=True); continue\n"
    "    if cmd == 'error': print(json.dumps({'error': 'refused'}), flush=True); continue\n"
    "    if cmd == 'deep': print('[' * 100000 + ']' * 100000, flush=True); continue\n"
    "    if cmd == 'deep-error':\n"
    "        print('{\"error\": ' + '[' * 100000 + ']' * 100000 + '}', flush=True); continue\n"
    "    if cmd == 'echo': print(json.dumps({'payload': p}), flush=True); continue\n"
    "    if cmd == 'respond':\n"
    "        print(json.dumps({'respond': {'early': True}}), flush=True); continue\n"
    "    if cmd == 'same': print('{}', flush=True); continue\n"
    "    if cmd == 'twice':\n"
    "        print(json.dumps({'payload': 'first'}), flush=True)\n"
    "        print(json.dumps({'payload': 'stale'}), flush=True); continue\n"
    "    out = {'pid': os.getpid(), 'hook': msg['hook'], 'rid': msg['context']['aws_request_id']}\n"
    "    print(json.dumps({'payload': out}), flush=True)\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PersistentHooks]:
    log_stream = io.StringIO()
    mw = Middleware(name="keeper", path=write_exe(tmp_path / "keeper", SERVER), mode="persistent")
    runner = PersistentHooks(mw, log=Log(log_stream), env=ENV)
    runner.start()
    runner.log_stream = log_stream  # type: ignore[attr-defined]
    yield runner
    pid = runner.pid
    runner.close()
    assert pid is None or wait_gone(pid)


def test_persistent_serves_a_thousand_calls_from_one_process(server: PersistentHooks) -> None:
    pid = server.pid
    for i in range(1000):
        result = server.call("before", {"n": i}, CONTEXT, 5)
        assert result == HookResult("replace", {"pid": pid, "hook": "before", "rid": "req-1"})
    assert server.pid == pid


def test_persistent_killed_between_calls_is_restarted(server: PersistentHooks) -> None:
    first = server.call("after", {}, CONTEXT, 5).payload["pid"]
    for _ in range(300):
        server.call("after", {}, CONTEXT, 5)
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    second = server.call("after", {}, CONTEXT, 5).payload["pid"]
    assert second != first and server.pid == second
    assert (
        "middleware keeper ended with signal SIGKILL; restarting it" in server.log_stream.getvalue()
    )  # type: ignore[attr-defined]


def test_persistent_dying_mid_call_fails_then_restarts(server: PersistentHooks) -> None:
    first = server.pid
    with pytest.raises(MiddlewareError) as info:
        server.call("before", {"cmd": "die"}, CONTEXT, 5)
    assert "keeper (before): ended with exit code 3 before answering" in info.value.message
    assert "dying" in info.value.message
    assert server.call("before", {}, CONTEXT, 5).payload["pid"] not in (None, first)


def test_persistent_timeout_kills_and_restarts(server: PersistentHooks) -> None:
    first = server.pid
    assert first is not None
    began = time.monotonic()
    with pytest.raises(MiddlewareTimeout) as info:
        server.call("error", {"cmd": "sleep"}, CONTEXT, 0.3)
    assert time.monotonic() - began < 3
    assert "keeper (error)" in info.value.message
    assert wait_gone(first)
    assert server.call("before", {}, CONTEXT, 5).payload["pid"] != first


def test_persistent_timeout_does_not_wait_for_an_escaped_stderr(
    server: PersistentHooks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grandchild outside the group holds stderr for 8 s; the stderr wait of processes that
    # end by themselves is raised to 20 s: the timeout must not wait for either.
    monkeypatch.setattr("sor.middleware.persistent_mode._STDERR_WAIT", 20.0)
    pidfile = tmp_path / "holder"
    began = time.monotonic()
    try:
        with pytest.raises(MiddlewareTimeout):
            server.call("error", {"cmd": "linger", "pidfile": str(pidfile)}, CONTEXT, 1.0)
        assert time.monotonic() - began < 5
        assert alive(int(pidfile.read_text()))  # the pipe is still held: no EOF was awaited
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_persistent_answers(server: PersistentHooks) -> None:
    pid = server.pid
    assert server.call("before", {"cmd": "same"}, CONTEXT, 5).kind == "unchanged"
    assert server.call("before", {"cmd": "respond"}, CONTEXT, 5) == HookResult(
        "respond", {"early": True}
    )
    assert server.call("error", {"cmd": "respond"}, CONTEXT, 5) == HookResult(
        "respond", {"early": True}
    )
    with pytest.raises(MiddlewareError, match="reported an error: refused"):
        server.call("before", {"cmd": "error"}, CONTEXT, 5)
    assert server.pid == pid  # a reported error is an answer: the process is fine
    with pytest.raises(MiddlewareError, match="not JSON"):
        server.call("before", {"cmd": "garbage"}, CONTEXT, 5)
    assert server.call("before", {}, CONTEXT, 5).payload["pid"] != pid


def test_persistent_extra_answer_is_never_taken_for_the_next_call(server: PersistentHooks) -> None:
    pid = server.pid
    assert server.call("before", {"cmd": "twice"}, CONTEXT, 5).payload == "first"
    assert server.proc is not None
    deadline = time.monotonic() + 5
    while not server.proc.reader.pending() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the unasked line has arrived, however loaded the machine
    assert server.proc.reader.pending()
    result = server.call("before", {}, CONTEXT, 5).payload
    assert result != "stale" and result["pid"] != pid
    assert "wrote a line nobody asked for" in server.log_stream.getvalue()  # type: ignore[attr-defined]


def test_persistent_respond_from_after_is_a_failure(server: PersistentHooks) -> None:
    pid = server.pid
    with pytest.raises(MiddlewareError) as info:
        server.call("after", {"cmd": "respond"}, CONTEXT, 5)
    assert not isinstance(info.value, MiddlewareTimeout)
    message = info.value.message
    assert message.startswith('middleware keeper (after): answered {"respond": ...} from its after')
    assert "only before and error hooks may answer now" in message
    assert server.pid == pid  # the answer was in step with the protocol: the process is kept


def test_persistent_answer_nested_too_deeply_is_a_failure(server: PersistentHooks) -> None:
    pid = server.pid
    with pytest.raises(MiddlewareError, match=r"keeper \(after\): .*nested too deeply"):
        server.call("after", {"cmd": "deep"}, CONTEXT, 5)
    assert server.call("before", {}, CONTEXT, 5).payload["pid"] not in (None, pid)


def test_persistent_error_nested_too_deeply_is_a_failure(server: PersistentHooks) -> None:
    with pytest.raises(MiddlewareError, match=r"^middleware keeper \(error\): "):
        server.call("error", {"cmd": "deep-error"}, CONTEXT, 5)


def test_persistent_payload_with_a_lone_surrogate(server: PersistentHooks) -> None:
    payload = {"cmd": "echo", "body": "bad \ud800 half", "name": "caf\u00e9"}
    context = dict(CONTEXT, function_name="fn\udc80")
    assert server.call("before", payload, context, 5) == HookResult("replace", payload)


def test_persistent_payload_that_cannot_be_json(server: PersistentHooks) -> None:
    pid = server.pid
    with pytest.raises(MiddlewareError, match=r"^middleware keeper \(before\): cannot be given"):
        server.call("before", {"when": object()}, CONTEXT, 5)
    assert server.call("before", {}, CONTEXT, 5).payload["pid"] == pid


def test_persistent_request_lines_are_what_sor_payload_writes() -> None:
    messages: list[dict[str, object]] = [
        {"hook": "before", "payload": {"a": [1, 2.5, None, "caf\u00e9"]}, "context": {"x": 1}},
        {"hook": "after", "payload": [float("nan"), float("-inf")], "context": {}},
        {"hook": "error", "payload": "bad \ud800 half", "context": {}},
    ]
    for message in messages:
        assert request_line(message) == encode(message) + b"\n"
    with pytest.raises(TypeError):
        request_line({"payload": object()})


def test_persistent_stderr_goes_to_the_log_with_its_name(server: PersistentHooks) -> None:
    server.call("before", {}, CONTEXT, 5)
    assert "[keeper] ready" in server.log_stream.getvalue()  # type: ignore[attr-defined]


def test_persistent_that_cannot_start(tmp_path: Path) -> None:
    mw = Middleware(name="nope", path=tmp_path / "absent", mode="persistent")
    runner = PersistentHooks(mw, log=Log(io.StringIO()), env=ENV)
    with pytest.raises(MiddlewareError, match=r"nope \(persistent\)"):
        runner.start()


def test_what_a_persistent_middleware_logs_before_it_answers_is_logged_first(
    tmp_path: Path,
) -> None:
    """Its stderr lines and its answer travel on two pipes: sor takes the answer only once the
    lines written before it are in the log, so the log keeps the order things happened in."""
    exe = write_exe(
        tmp_path / "chatty",
        py(
            "for n, line in enumerate(sys.stdin):\n"
            "    for i in range(50):\n"
            "        print(f'call {n} line {i}', file=sys.stderr, flush=True)\n"
            "    print('{}', flush=True)\n"
        ),
    )
    stream = io.StringIO()
    runner = PersistentHooks(
        Middleware(name="chatty", path=exe, mode="persistent"), log=Log(stream), env=ENV
    )
    try:
        for n in range(20):
            assert runner.call("before", {}, CONTEXT, 10) == HookResult("unchanged")
            assert stream.getvalue().endswith(f"[chatty] call {n} line 49\n"), n
    finally:
        runner.close()
