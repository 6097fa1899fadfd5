"""`sor run` as a real process against a real Runtime API server."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import RuntimeApiServer, read_request

HANDLERS = textwrap.dedent(
    """
    import os, signal, sys, time

    def echo(event, context):
        return {"event": event, "pid": os.getpid(), "trace": os.environ.get("_X_AMZN_TRACE_ID")}

    def flaky(event, context):
        if event.get("die") == "exit":
            os._exit(3)
        if event.get("die") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if event.get("sleep"):
            time.sleep(event["sleep"])
        return {"pid": os.getpid()}

    def huge(event, context):
        return "x" * 6_500_000

    def huge_error(event, context):
        raise ValueError("y" * 6_500_000)

    def slow_then_done(event, context):
        time.sleep(event["sleep"])
        open(event["mark"], "w").close()
        return {"real": "result"}
    """
)


class Sor:
    """A `sor run` process and the server it talks to."""

    def __init__(self, root: Path, handler: str | None, **env: str) -> None:
        self.server = RuntimeApiServer()
        self.env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": self.server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "SOR_LAYER_DIR": str(root / "no-layer"),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            **env,
        }
        self.env.pop("SOR_CONFIG", None)
        if handler:
            self.env["_HANDLER"] = handler
        self.stderr_path = root / "sor.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sor", "run"], cwd=root, env=self.env, stderr=err
            )

    def invoke(self, event: Any, **options: Any) -> Any:
        return self.server.invoke(event, **options)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.server.close()
        return code


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return tmp_path


@pytest.fixture
def sor_run(root: Path) -> Iterator[Any]:
    started: list[Sor] = []

    def start(handler: str | None = "handlers.echo", **env: str) -> Sor:
        s = Sor(root, handler, **env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_success_and_one_log_line_per_invocation(sor_run: Any) -> None:
    s = sor_run()
    secret = "do-not-log-this-payload"
    answers = [s.invoke({"secret": secret, "n": i}) for i in range(3)]
    assert [a.kind for a in answers] == ["response"] * 3
    body = answers[0].json()
    assert body["event"] == {"secret": secret, "n": 0}
    assert body["trace"].startswith("Root=1-")
    assert s.stop() == 0
    lines = [line for line in s.stderr.splitlines() if "\tinvocation" in line]
    assert len(lines) == 3
    assert all("outcome=success" in line and "handler_ms=" in line for line in lines)
    assert secret not in s.stderr


def test_json_log_format(sor_run: Any) -> None:
    s = sor_run(AWS_LAMBDA_LOG_FORMAT="JSON")
    answer = s.invoke({"n": 1}, request_id="req-json-1")
    assert answer.kind == "response"
    s.stop()
    records = [json.loads(line) for line in s.stderr.splitlines() if line.startswith("{")]
    invocations = [r for r in records if r.get("message") == "invocation"]
    assert len(invocations) == 1
    assert invocations[0]["requestId"] == "req-json-1"
    assert invocations[0]["outcome"] == "success"


@pytest.mark.parametrize(("die", "how"), [("exit", "exit code 3"), ("kill", "signal SIGKILL")])
def test_crash_is_runtime_exited_and_next_succeeds(sor_run: Any, die: str, how: str) -> None:
    s = sor_run("handlers.flaky")
    first = s.invoke({}).json()["pid"]
    crashed = s.invoke({"die": die})
    assert crashed.kind == "error"
    error = crashed.json()
    assert error["errorType"] == "Sor.RuntimeExited"
    assert how in error["errorMessage"] and "handlers.flaky" in error["errorMessage"]
    assert crashed.headers["Lambda-Runtime-Function-Error-Type"] == "Sor.RuntimeExited"
    assert error["requestId"]
    after = s.invoke({})
    assert after.kind == "response" and after.json()["pid"] != first


def test_graceful_timeout_then_next_works(sor_run: Any) -> None:
    s = sor_run("handlers.flaky")
    assert s.invoke({}).kind == "response"  # sor is ready: the next event is not kept waiting
    began = time.monotonic()
    answer = s.invoke({"sleep": 30}, timeout=2)
    assert time.monotonic() - began < 5
    assert answer.kind == "error"
    error = answer.json()
    assert error["errorType"] == "Sor.Timeout"
    assert "2.00 seconds" in error["errorMessage"] and "handlers.flaky" in error["errorMessage"]
    assert s.invoke({}).kind == "response"


def test_import_failure_is_posted_as_init_error(sor_run: Any) -> None:
    s = sor_run("missing_module.handler")
    answer = s.server.wait_init_error()
    error = answer.json()
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'missing_module'" in error["errorMessage"]
    assert answer.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ImportModuleError"
    assert s.proc.wait(10) == 1


def test_config_error_lists_every_problem(sor_run: Any, root: Path) -> None:
    (root / "sor.yml").write_text(
        "version: 1\nruntime:\n  handler: handlers.echo\n  bogus: 1\nnonsense: true\n"
    )
    s = sor_run(None)
    error = s.server.wait_init_error().json()
    assert error["errorType"] == "Sor.ConfigError"
    assert "bogus" in error["errorMessage"] and "nonsense" in error["errorMessage"]
    assert s.proc.wait(10) == 1


def test_event_that_is_not_json(sor_run: Any) -> None:
    s = sor_run()
    answer = s.invoke(b"{not json")
    assert answer.kind == "error"
    assert answer.json()["errorType"] == "Runtime.UnmarshalError"
    assert s.invoke({"ok": 1}).kind == "response"


def test_six_megabyte_round_trip(sor_run: Any) -> None:
    s = sor_run()
    data = "x" * (6 * 1000 * 1000 - 200)
    answer = s.invoke({"d": data}, timeout=20)
    assert answer.kind == "response"
    assert answer.json()["event"]["d"] == data


def test_sigterm_stops_the_language_runtime(sor_run: Any) -> None:
    s = sor_run()
    pid = s.invoke({}).json()["pid"]
    assert Path(f"/proc/{pid}").exists()
    assert s.stop() == 0
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()


def test_missing_runtime_api_is_a_usage_error(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    done = subprocess.run(
        [sys.executable, "-m", "sor", "run"], env=env, cwd=root, capture_output=True, timeout=10
    )
    assert done.returncode == 2
    assert b"AWS_LAMBDA_RUNTIME_API" in done.stderr


def test_unreachable_runtime_api_is_a_clear_error(root: Path) -> None:
    server = RuntimeApiServer()
    address = server.address
    server.close()  # nothing listens there any more
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": address, "_HANDLER": "handlers.echo"}
    env["LAMBDA_TASK_ROOT"] = str(root)
    done = subprocess.run(
        [sys.executable, "-m", "sor", "run"], env=env, cwd=root, capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert f"Runtime API at {address} is unreachable".encode() in done.stderr


def test_debug_proxy_is_removed_when_debugging_is_off(sor_run: Any) -> None:
    s = sor_run()
    answer = s.invoke({"a": 1, "_debugProxy": "10.0.0.1:9229"})
    assert answer.json()["event"] == {"a": 1}
    s.stop()
    assert "_debugProxy ignored" in s.stderr


def test_middlewares_run_around_the_handler(sor_run: Any, root: Path) -> None:
    mw = root / "middlewares" / "replace"
    mw.parent.mkdir()
    mw.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  before) cat >/dev/null; echo '{\"replaced\": true}' ;;\n"
        "  *) cat ;;\n"
        "esac\n"
    )
    mw.chmod(0o755)
    (root / "sor.yml").write_text(
        "version: 1\nruntime:\n  handler: handlers.echo\nmiddlewares:\n  - name: replace\n"
    )
    s = sor_run(None)
    answer = s.invoke({"original": True})
    assert answer.kind == "response", answer.body
    assert answer.json()["event"] == {"replaced": True}
    s.stop()
    line = next(x for x in s.stderr.splitlines() if "\tinvocation" in x)
    assert "before:replace_ms=" in line and "handler_ms=" in line


def test_through_the_embedded_emulator(root: Path) -> None:
    import io

    from sor.emulator.emulator import Emulator
    from sor.logs import Log

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_HANDLER"))}
    env["SOR_LAYER_DIR"] = str(root / "no-layer")
    emulator = Emulator(
        root, timeout=1.0, env=env, handler="handlers.flaky", log=Log(io.StringIO())
    )
    emulator.start()
    try:
        ok = emulator.invoke(b"{}")
        assert ok.status == 200 and ok.function_error is None
        timed_out = emulator.invoke(b'{"sleep": 30}')
        assert timed_out.error_type() == "Sor.Timeout"
        assert b"after 1.00 seconds" in timed_out.body
        assert emulator.invoke(b"{}").function_error is None
    finally:
        emulator.stop()


def _adapters_in(folder: Path) -> list[int]:
    """Language runtimes running in ``folder``: sor starts each in a session of its own (sor
    itself runs there too, in the test's session); a forked one has sor's command line."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            leader = os.getsid(int(proc.name)) == int(proc.name)
        except OSError:
            continue
        if leader and Path(cwd) == folder:
            found.append(int(proc.name))
    return found


def test_init_error_after_the_early_spawn_leaves_no_runtime(sor_run: Any, root: Path) -> None:
    # The language runtime is spawned right after the config loads; a middleware that cannot
    # start fails init after that: the error is still posted, and the runtime does not survive.
    (root / "mw").write_text("#!/nonexistent/interpreter\n")  # posix_spawn fails: ENOENT
    (root / "mw").chmod(0o755)
    # A slow import keeps the runtime busy (not reading its pipe) for as long as the test runs.
    (root / "slow.py").write_text("import time\ntime.sleep(5)\n\ndef h(e, c):\n    return e\n")
    (root / "sor.yml").write_text(
        "version: 1\nruntime:\n  handler: slow.h\n"
        "middlewares:\n  - name: broken\n    path: mw\n    mode: persistent\n"
    )
    s = sor_run(None)
    error = s.server.wait_init_error().json()
    assert error["errorType"].startswith("Sor.Middleware"), error
    assert "broken" in error["errorMessage"]
    assert s.proc.wait(10) == 1
    assert _adapters_in(root) == []


GUESSED = textwrap.dedent(
    """
    import os
    with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
        log.write(f"{os.getpid()}\\n")
    def echo(event, context):
        return {"pid": os.getpid(), "by": "echo"}
    def other(event, context):
        return {"pid": os.getpid(), "by": "other"}
    """
)


def test_the_runtime_guessed_from_handler_is_kept_when_the_config_agrees(
    sor_run: Any, root: Path
) -> None:
    (root / "guessed.py").write_text(GUESSED)
    (root / "sor.yml").write_text("version: 1\nruntime: {handler: guessed.echo}\n")
    s = sor_run("guessed.echo")
    body = s.invoke({}).json()
    # One import of the handler, by the very process that answers: the early one was kept.
    assert (root / "imports.log").read_text().split() == [str(body["pid"])]
    assert body["by"] == "echo"
    assert s.stop() == 0
    assert "runtime_started=before-config" in s.stderr


def test_a_guess_the_config_contradicts_is_replaced(sor_run: Any, root: Path) -> None:
    (root / "guessed.py").write_text(GUESSED)
    (root / "sor.yml").write_text("version: 1\nruntime: {handler: guessed.other}\n")
    s = sor_run("guessed.echo")
    body = s.invoke({}).json()
    assert body["by"] == "other"
    # The guess waited for `load` and was stopped without it: the module was imported once,
    # by the process that answers (no user code runs twice).
    assert (root / "imports.log").read_text().split() == [str(body["pid"])]
    assert s.invoke({}).json()["pid"] == body["pid"]
    assert s.stop() == 0
    assert "runtime_started=after-config" in s.stderr


def test_no_guess_without_a_python_module(sor_run: Any, root: Path) -> None:
    (root / "sor.yml").write_text("version: 1\nruntime: {handler: handlers.echo}\n")
    s = sor_run("index.handler")  # e.g. a Node function's setting: no index.py to run
    assert s.invoke({"n": 1}).json()["event"] == {"n": 1}
    assert s.stop() == 0
    assert "runtime_started=after-config" in s.stderr


STUBBORN = textwrap.dedent(
    """
    import os, signal, time
    MARK = os.path.join(os.path.dirname(__file__), "got-term")

    def on_term(signum, frame):
        open(MARK, "w").close()  # then keep running: sor waits its grace, then kills

    signal.signal(signal.SIGTERM, on_term)

    def echo(event, context):
        return {"pid": os.getpid()}
    """
)


def test_a_second_sigterm_during_shutdown_is_ignored(sor_run: Any, root: Path) -> None:
    (root / "stubborn.py").write_text(STUBBORN)
    (root / "sor.yml").write_text("version: 1\nruntime: {handler: stubborn.echo}\n")
    s = sor_run("stubborn.echo")
    pid = s.invoke({}).json()["pid"]
    s.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while not (root / "got-term").exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert (root / "got-term").exists()  # sor is inside its shutdown, stopping the runtime
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    assert "Traceback" not in s.stderr
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()


def _scripted_api(script: Any) -> tuple[Any, list[tuple[bytes, bytes]]]:
    """A raw Runtime API on 127.0.0.1: ``script(conn, read)`` talks to each connection in turn;
    ``read()`` returns one whole request as (request line, body), also recorded."""
    import socket

    sock = socket.create_server(("127.0.0.1", 0))
    seen: list[tuple[bytes, bytes]] = []

    def read(conn: Any) -> tuple[bytes, bytes]:
        head, body = read_request(conn)
        seen.append((head.split(b"\r\n")[0], body))
        return seen[-1]

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                script(conn, functools.partial(read, conn))

    threading.Thread(target=serve, daemon=True).start()
    return sock, seen


def _next_head(request_id: str, length: int) -> bytes:
    deadline = int(time.time() * 1000) + 30000
    return (
        b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: %s\r\n"
        b"Lambda-Runtime-Deadline-Ms: %d\r\nContent-Length: %d\r\n\r\n"
        % (request_id.encode(), deadline, length)
    )


def test_sigterm_while_an_invocation_arrives_still_answers_it(root: Path) -> None:
    arriving, go_on = threading.Event(), threading.Event()
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"

    def script(conn: Any, read: Any) -> None:
        read()  # GET next
        body = b'{"half": "one", "other": "two"}'
        conn.sendall(_next_head("r-sig", len(body)) + body[:10])
        arriving.set()
        go_on.wait(10)
        conn.sendall(body[10:])
        read()  # the answer
        conn.sendall(accepted)
        while read():  # any further call (a GET next would mean the signal was lost)
            conn.sendall(accepted)

    sock, seen = _scripted_api(script)
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{sock.getsockname()[1]}"}
    env.update(LAMBDA_TASK_ROOT=str(root), _HANDLER="handlers.echo")
    env.pop("SOR_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "run"], cwd=root, env=env, stderr=subprocess.PIPE
    )
    try:
        assert arriving.wait(10)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # let the signal land while the invocation is half-received
        go_on.set()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()
    assert [line for line, _ in seen] == [
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        b"POST /2018-06-01/runtime/invocation/r-sig/response HTTP/1.1",
    ]
    assert json.loads(seen[1][1])["event"] == {"half": "one", "other": "two"}


def test_a_response_the_api_refuses_as_too_large_is_answered_with_an_error(root: Path) -> None:
    from sor.config.model import Config, RuntimeSettings
    from sor.logs import Log
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime

    refusal = b'{"errorType":"RequestEntityTooLarge"}'
    too_large = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: %d\r\n\r\n%s" % (
        len(refusal),
        refusal,
    )
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"

    def script(conn: Any, read: Any) -> None:
        read()
        conn.sendall(_next_head("r-big", 2) + b"{}")
        read()
        conn.sendall(too_large)
        read()
        conn.sendall(accepted)

    sock, seen = _scripted_api(script)
    api = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}")
    log = io.StringIO()
    rt = LanguageRuntime(
        RuntimeSettings(handler="handlers.echo"), task_root=root, env=dict(os.environ), log=Log()
    )
    invoker = Invoker(Config(), rt, api, log=Log(log), env=dict(os.environ))
    try:
        rt.start(time.monotonic() + 10)
        assert invoker.handle(api.next()) == "Function.ResponseSizeTooLarge"
    finally:
        rt.stop()
        api.close()
        sock.close()
    assert [line.split(b" ")[1] for line, _ in seen] == [
        b"/2018-06-01/runtime/invocation/next",
        b"/2018-06-01/runtime/invocation/r-big/response",
        b"/2018-06-01/runtime/invocation/r-big/error",
    ]
    error = json.loads(seen[2][1])
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in error["errorMessage"]
    assert "outcome=Function.ResponseSizeTooLarge" in log.getvalue()


class _FailingInvocationLog(io.StringIO):
    """A log stream that breaks on the invocation line, as a closed stderr would."""

    def write(self, text: str) -> int:
        if "\tinvocation" in text:
            raise BrokenPipeError("stderr is gone")
        return super().write(text)


def test_a_failing_log_line_after_the_answer_is_not_a_second_answer(root: Path) -> None:
    from sor.config.model import Config, RuntimeSettings
    from sor.logs import Log
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime

    server = RuntimeApiServer()
    api = RuntimeApiClient(server.address)
    rt = LanguageRuntime(
        RuntimeSettings(handler="handlers.echo"), task_root=root, env=dict(os.environ), log=Log()
    )
    invoker = Invoker(Config(), rt, api, log=Log(_FailingInvocationLog()), env=dict(os.environ))
    try:
        rt.start(time.monotonic() + 10)
        first = server.submit({"n": 1})
        assert invoker.handle(api.next()) == "success"
        assert server.wait_answer(first).kind == "response"
        second = server.submit({"n": 2})  # the server still serves: no stray answer came in
        assert invoker.handle(api.next()) == "success"
        assert server.wait_answer(second).json()["event"] == {"n": 2}
    finally:
        rt.stop()
        api.close()
        server.close()


def test_sigterm_while_the_api_is_retried_exits_cleanly(root: Path) -> None:
    import socket

    # Bound, not listening: init needs no API call, then every `GET next` is refused and retried.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{sock.getsockname()[1]}"}
    env.update(LAMBDA_TASK_ROOT=str(root), _HANDLER="handlers.echo")
    env.pop("SOR_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "run"], cwd=root, env=env, stderr=subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        while b"\tinit" not in (line := proc.stderr.readline()):  # init over: serving
            assert line, "sor run ended before its init line"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert b"unreachable" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"


def _request(conn: Any, seen: list[tuple[bytes, bytes]]) -> bytes:
    """Read one whole request, record it; its request line."""
    head, body = read_request(conn)
    seen.append((head.split(b"\r\n")[0], body))
    return seen[-1][0]


def _invoker_against(root: Path, handler: str, script: Any) -> tuple[str, list[Any], str]:
    """Run one invocation of ``handler`` through an Invoker against a scripted API."""
    from sor.config.model import Config, RuntimeSettings
    from sor.logs import Log
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.invocation import Invoker
    from sor.runtime.language import LanguageRuntime

    sock, seen = _scripted_api(script)
    api = RuntimeApiClient(f"127.0.0.1:{sock.getsockname()[1]}")
    log = io.StringIO()
    rt = LanguageRuntime(
        RuntimeSettings(handler=handler), task_root=root, env=dict(os.environ), log=Log()
    )
    invoker = Invoker(Config(), rt, api, log=Log(log), env=dict(os.environ))
    try:
        rt.start(time.monotonic() + 10)
        outcome = invoker.handle(api.next())
    finally:
        rt.stop()
        api.close()
        sock.close()
    return outcome, seen, log.getvalue()


@pytest.mark.parametrize("handler", ["handlers.huge", "handlers.huge_error"])
def test_a_body_over_lambdas_limit_is_never_posted(root: Path, handler: str) -> None:
    # The server answers 413 as soon as it has a head, without reading the body, and hangs up:
    # the body must not be sent at all (its send would fail half-way).
    def script(conn: Any, read: Any) -> None:
        import socket

        read()
        conn.sendall(_next_head("r-big", 2) + b"{}")
        head = b""
        while b"\r\n\r\n" not in head:  # the head, left in the socket
            head = conn.recv(65536, socket.MSG_PEEK)
        if b"/error " in head.split(b"\r\n")[0]:
            _request(conn, seen)
            conn.sendall(_ACCEPTED)
        else:  # answered and closed with the body unread
            seen.append((head.split(b"\r\n")[0], b""))
            conn.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")

    seen: list[tuple[bytes, bytes]] = []
    outcome, _, log = _invoker_against(root, handler, script)
    assert outcome == "Function.ResponseSizeTooLarge"
    assert [line.split(b" ")[1] for line, _ in seen] == [
        b"/2018-06-01/runtime/invocation/r-big/error"
    ]
    error = json.loads(seen[0][1])
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in error["errorMessage"]
    assert "outcome=Function.ResponseSizeTooLarge" in log


def test_sigterm_during_an_invocation_whose_post_is_refused_still_answers_it(
    root: Path, tmp_path: Path
) -> None:
    import socket

    mark = tmp_path / "handler-done"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    seen: list[tuple[bytes, bytes]] = []

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            _request(conn, seen)
            event = json.dumps({"sleep": 0.5, "mark": str(mark)}).encode()
            conn.sendall(_next_head("r-term", len(event)) + event)
        sock.close()  # the API goes away: the answer's POST is refused and retried
        deadline = time.monotonic() + 10
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # the first attempts are refused
        again = socket.create_server(("127.0.0.1", port))
        with again:
            conn, _ = again.accept()
            with conn:
                _request(conn, seen)
                conn.sendall(_ACCEPTED)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"}
    env.update(LAMBDA_TASK_ROOT=str(root), _HANDLER="handlers.slow_then_done")
    env.pop("SOR_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "run"], cwd=root, env=env, stderr=subprocess.PIPE
    )
    try:
        while len(seen) < 1:
            assert proc.poll() is None
            time.sleep(0.005)
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # while the handler runs
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert b"Traceback" not in stderr
    server.join(5)
    assert [line for line, _ in seen] == [
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        b"POST /2018-06-01/runtime/invocation/r-term/response HTTP/1.1",
    ]
    assert json.loads(seen[1][1]) == {"real": "result"}


def test_sigterm_during_init_stops_at_once_and_leaves_no_runtime(sor_run: Any, root: Path) -> None:
    (root / "slow.py").write_text("import time\ntime.sleep(8)\n\ndef h(e, c):\n    return e\n")
    (root / "sor.yml").write_text("version: 1\nruntime: {handler: slow.h}\n")
    s = sor_run("slow.h")
    deadline = time.monotonic() + 5
    while not _adapters_in(root) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _adapters_in(root)  # init is waiting for its `ready`
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(5) == 0  # well before the 8 s import ends
    assert "Traceback" not in s.stderr
    assert _adapters_in(root) == []


def test_an_unexpected_exception_during_init_is_posted_as_an_init_error(root: Path) -> None:
    from sor.logs import Log
    from sor.runtime.loop import Runner

    class Broken(Runner):
        def _pipeline(self, config: Any) -> Any:
            raise KeyError("no such thing")

    server = RuntimeApiServer()
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": server.address,
        "LAMBDA_TASK_ROOT": str(root),
        "SOR_LAYER_DIR": str(root / "no-layer"),
        "_HANDLER": "handlers.echo",
    }
    env.pop("SOR_CONFIG", None)
    log = io.StringIO()
    try:
        assert Broken(env, cwd=root, log=Log(log)).run() == 1
        error = server.wait_init_error().json()
    finally:
        server.close()
    assert error["errorType"] == "Sor.Error"
    assert "KeyError" in error["errorMessage"] and "no such thing" in error["errorMessage"]
    assert "init failed" in log.getvalue()
    assert _adapters_in(root) == []


def test_a_config_nested_too_deeply_is_an_init_error(sor_run: Any, root: Path) -> None:
    deep = "[" * 300 + "]" * 300
    hooks = f"[{deep}, {deep}]"
    (root / "sor.yml").write_text(f"version: 1\nmiddlewares:\n  - name: m\n    hooks: {hooks}\n")
    s = sor_run()
    error = s.server.wait_init_error().json()
    assert error["errorType"] == "Sor.ConfigError"
    assert "middlewares[0].hooks" in error["errorMessage"]
    assert "nested too deeply" in error["errorMessage"]
    assert s.proc.wait(10) == 1
