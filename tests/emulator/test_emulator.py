"""The embedded emulator (sor.emulator, sor.emulator.sandbox, sor.emulator.answers) and `sor local
invoke`.

Bootstraps here are real processes: a Python Runtime API client written into tmp_path (the probe),
sh scripts, and `sor run` itself for `sor local invoke`.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sor.emulator.emulator import Emulator, InvokeResult, lambda_environment
from sor.emulator.invoke_endpoint import invoke_server
from sor.errors import UsageError
from sor.logs import Log

ROOT = Path(__file__).resolve().parents[2]
SOR = [sys.executable, "-m", "sor"]
INVOKE_PATH = "/2015-03-31/functions/function/invocations"

# A Runtime API client: one keep-alive connection; what it does is driven by the event.
PROBE = textwrap.dedent(
    """
    import http.client, json, os, sys
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    conn = http.client.HTTPConnection(api)
    def call(method, path, body=None, headers=None):
        conn.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    if os.environ.get("PROBE_INIT_ERROR"):
        err = {"errorMessage": "cannot init", "errorType": "Probe.InitError"}
        call("POST", "/init/error", json.dumps(err), {"Lambda-Runtime-Function-Error-Type": "X"})
        sys.exit(9)
    previous = {}
    while True:
        status, body, headers = call("GET", "/invocation/next")
        rid = headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(body)
        action = event.get("action")
        if action == "report":
            out = {
                "headers": headers, "event_size": len(body), "cwd": os.getcwd(),
                "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LAMBDA_"))},
                "port": conn.sock.getsockname()[1], "previous": previous,
            }
            previous = {}
            call("POST", f"/invocation/{rid}/response", json.dumps(out))
        elif action == "statuses":
            previous["wrong_id"] = call("POST", "/invocation/nope/response", b"{}")[0]
            previous["init_error_late"] = call("POST", "/init/error", b"{}")[0]
            previous["unknown"] = call("GET", "/nothing")[0]
            previous["response"] = call("POST", f"/invocation/{rid}/response", b'"ok"')[0]
            previous["again"] = call("POST", f"/invocation/{rid}/response", b'"again"')[0]
            previous["error_after"] = call("POST", f"/invocation/{rid}/error", b"{}")[0]
        elif action == "error":
            status, _, _ = call("POST", f"/invocation/{rid}/error", event["body"].encode(),
                                {"Lambda-Runtime-Function-Error-Type": "Probe.Error"})
        elif action == "echo":
            call("POST", f"/invocation/{rid}/response", body)
        elif action == "chunked":
            parts = iter([b'{"chunked": ', b'"' + b"c" * event["size"] + b'"', b"}"])
            conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=parts,
                         encode_chunked=True)
            r = conn.getresponse(); r.read(); previous["chunked"] = r.status
        elif action == "spawn":
            import subprocess
            child = subprocess.Popen(["sleep", "300"], start_new_session=True)
            print("grandchild", child.pid, flush=True)
            call("POST", f"/invocation/{rid}/response", json.dumps({"pid": child.pid}))
        elif action == "exit_after":
            call("POST", f"/invocation/{rid}/response", b'"bye"')
            os._exit(3)
        elif action == "hang":
            import time
            open(event.get("marker", "hanging"), "w").close()  # the test may act now
            time.sleep(300)
    """
)


def probe_dir(tmp_path: Path) -> Path:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "probe.py").write_text(PROBE)
    return fn


def start(fn: Path, bootstrap: list[str], timeout: float = 3.0, **env: str) -> Emulator:
    base = {"PATH": os.environ["PATH"], **env}
    emulator = Emulator(fn, timeout, base, bootstrap, Log(sys.stderr))
    emulator.start()
    return emulator


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def probe(tmp_path: Path):  # type: ignore[no-untyped-def]
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], AWS_LAMBDA_FUNCTION_NAME="probe-fn")
    yield emulator
    emulator.stop()


def invoke_json(emulator: Emulator, event: object, **kw: str) -> dict:  # type: ignore[type-arg]
    result = emulator.invoke(json.dumps(event).encode(), **kw)
    assert result.status == 200, result
    assert result.function_error is None, result
    value = json.loads(result.body)
    assert isinstance(value, dict)
    return value


def test_next_gives_lambda_headers_env_and_cwd(probe: Emulator) -> None:
    before = time.time() * 1000
    out = invoke_json(probe, {"action": "report"}, client_context='{"custom": {"a": 1}}')
    after = time.time() * 1000
    headers = {k.lower(): v for k, v in out["headers"].items()}
    assert len(headers["lambda-runtime-aws-request-id"]) == 36
    deadline = int(headers["lambda-runtime-deadline-ms"])
    assert before + 2999 <= deadline <= after + 3000  # the 3 s timeout, from the invocation's start
    assert headers["lambda-runtime-invoked-function-arn"] == (
        "arn:aws:lambda:us-east-1:012345678912:function:probe-fn"
    )
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"a": 1}}
    assert "lambda-runtime-cognito-identity" not in headers
    env = out["env"]
    assert out["cwd"] == probe.directory == env["LAMBDA_TASK_ROOT"]
    assert os.path.isabs(env["LAMBDA_TASK_ROOT"])
    assert env["AWS_LAMBDA_RUNTIME_API"] == probe.runtime_api
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe-fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "3"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/probe-fn"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) > 0


def test_runtime_api_status_codes_and_keep_alive(probe: Emulator) -> None:
    first = invoke_json(probe, {"action": "report"})
    result = probe.invoke(b'{"action": "statuses"}')
    assert (result.status, result.body, result.function_error) == (200, b'"ok"', None)
    second = invoke_json(probe, {"action": "report"})
    assert second["previous"] == {
        "wrong_id": 400,
        "init_error_late": 403,
        "unknown": 404,
        "response": 202,
        "again": 403,
        "error_after": 403,
    }
    assert first["port"] == second["port"]  # one connection served every call


def test_function_error_is_passed_through_with_200(probe: Emulator) -> None:
    error = {"errorMessage": "bad", "errorType": "ValueError", "stackTrace": []}
    result = probe.invoke(json.dumps({"action": "error", "body": json.dumps(error)}).encode())
    assert result.status == 200
    assert json.loads(result.body) == error
    assert result.function_error == "Unhandled"
    assert result.headers["X-Amz-Function-Error"] == "Unhandled"
    result = probe.invoke(json.dumps({"action": "error", "body": "not json"}).encode())
    assert json.loads(result.body) == {"errorMessage": "not json", "errorType": "Probe.Error"}
    assert invoke_json(probe, {"action": "echo", "n": 1}) == {"action": "echo", "n": 1}


def test_timeout_kills_the_bootstrap_and_what_it_started(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=1.0)
    try:
        grandchild = invoke_json(emulator, {"action": "spawn"})["pid"]
        first = emulator.bootstrap_pid()
        assert first is not None and alive(grandchild)
        began = time.monotonic()
        result = emulator.invoke(b'{"action": "hang"}')
        assert time.monotonic() - began < 30  # did not hang
        assert (result.status, result.body) == (200, b"Task timed out after 1.00 seconds")
        assert result.function_error == "Unhandled"
        assert not alive(first)
        assert not alive(grandchild)  # in its own session, yet found and killed
        assert invoke_json(emulator, {"action": "echo"}) == {"action": "echo"}
        assert emulator.bootstrap_pid() not in (None, first)
    finally:
        emulator.stop()


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"])
    grandchild = invoke_json(emulator, {"action": "spawn"})["pid"]
    pid = emulator.bootstrap_pid()
    assert pid is not None
    emulator.stop()
    assert not alive(pid) and not alive(grandchild)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_init_error_is_answered_and_init_retried(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], PROBE_INIT_ERROR="1")
    try:
        for _ in range(2):
            result = emulator.invoke(b"{}")
            assert result.status == 502
            assert json.loads(result.body) == {
                "errorMessage": "cannot init",
                "errorType": "Probe.InitError",
            }
            assert result.function_error == "Unhandled"
    finally:
        emulator.stop()


def test_bootstrap_exiting_gives_runtime_exit_error(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    emulator = start(fn, ["sh", "-c", "exit 7"])
    try:
        result = emulator.invoke(b"{}")
        assert result.status == 502
        error = json.loads(result.body)
        assert error["errorType"] == "Runtime.ExitError"
        assert error["errorMessage"].endswith("Error: Runtime exited with error: exit status 7")
    finally:
        emulator.stop()


def when_hanging(fn: Path, then: Callable[[], object]) -> threading.Thread:
    """Run ``then`` once the probe has taken a `hang` invocation (it creates fn/hanging)."""

    def wait() -> None:
        until = time.monotonic() + 30
        while not (fn / "hanging").exists() and time.monotonic() < until:
            time.sleep(0.01)
        then()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def test_killed_mid_invocation_then_next_works(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=60.0)
    try:
        invoke_json(emulator, {"action": "echo"})
        pid = emulator.bootstrap_pid()
        assert pid is not None
        killer = when_hanging(fn, lambda: os.kill(pid, signal.SIGKILL))
        began = time.monotonic()
        result = emulator.invoke(b'{"action": "hang"}')
        killer.join()
        assert time.monotonic() - began < 30  # answered at the death, not at the timeout
        assert result.status == 502
        assert json.loads(result.body)["errorMessage"].endswith("exited with error: signal: killed")
        assert invoke_json(emulator, {"action": "echo", "x": 2}) == {"action": "echo", "x": 2}
    finally:
        emulator.stop()


def test_chunked_responses_and_their_size_limit(probe: Emulator) -> None:
    result = probe.invoke(b'{"action": "chunked", "size": 3}')
    assert (result.status, result.body) == (200, b'{"chunked": "ccc"}')
    result = probe.invoke(b'{"action": "chunked", "size": 6291556}')
    assert json.loads(result.body)["errorType"] == "Function.ResponseSizeTooLarge"
    assert invoke_json(probe, {"action": "report"})["previous"] == {"chunked": 413}


def test_oversized_event_is_refused(probe: Emulator) -> None:
    result = probe.invoke(b'"' + b"x" * (6 * 1024 * 1024 + 200) + b'"')
    assert result.status == 413
    assert json.loads(result.body)["errorType"] == "RequestEntityTooLarge"
    assert invoke_json(probe, {"action": "echo"}) == {"action": "echo"}


def test_unstartable_bootstrap_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no-such-bootstrap"):
        start(tmp_path, ["./no-such-bootstrap"])


def test_lambda_environment_keeps_given_values() -> None:
    env = lambda_environment(
        {"AWS_LAMBDA_FUNCTION_NAME": "given", "AWS_REGION": "eu-west-1", "LAMBDA_TASK_ROOT": "/x"},
        "/tmp/dir",
        "127.0.0.1:1",
        2.5,
        "app.handler",
    )
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "given"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["LAMBDA_TASK_ROOT"] == "/tmp/dir"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "2.5"
    assert env["_HANDLER"] == "app.handler"


def test_invoke_endpoint_over_http(probe: Emulator) -> None:
    server = invoke_server(probe, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        context = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
        headers = {"X-Amz-Client-Context": context}
        conn.request("POST", INVOKE_PATH, body=b'{"action": "report"}', headers=headers)
        response = conn.getresponse()
        out = json.loads(response.read())
        assert response.status == 200
        got = {k.lower(): v for k, v in out["headers"].items()}
        assert json.loads(got["lambda-runtime-client-context"]) == {"custom": {"k": "v"}}
        conn.request("POST", INVOKE_PATH, body=b'{"action": "echo"}')  # same connection
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b'{"action": "echo"}')
        # every other path is a function URL: tests/emulator/test_emulator_streaming.py
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint(probe: Emulator):  # type: ignore[no-untyped-def]
    """RIE's invoke endpoint in front of the probe, on the port the kernel gave it."""
    server = invoke_server(probe, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def client_context_seen(port: int, context: bytes) -> tuple[int, object]:
    """Invoke with X-Amz-Client-Context (base64 of ``context``): the status, and the client
    context as the runtime parsed it (the error type when refused)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-Amz-Client-Context": base64.b64encode(context).decode()}
    conn.request("POST", INVOKE_PATH, body=b'{"action": "report"}', headers=headers)
    response = conn.getresponse()
    out = json.loads(response.read())
    conn.close()
    if response.status != 200:
        return response.status, out["errorType"]
    got = {k.lower(): v for k, v in out["headers"].items()}
    return 200, json.loads(got["lambda-runtime-client-context"])


def test_client_context_beyond_latin1_reaches_the_runtime(endpoint: int) -> None:
    context = {"custom": {"name": "Zoë ☃ 東京"}, "env": {"locale": "ja"}}
    began = time.monotonic()
    assert client_context_seen(endpoint, json.dumps(context, ensure_ascii=False).encode()) == (
        200,
        context,
    )
    assert time.monotonic() - began < 30  # answered by the runtime, not by the timeout
    crlf = b'{"custom":\r\n {"a": "b"}}'  # JSON whitespace that would end a header line
    assert client_context_seen(endpoint, crlf) == (200, {"custom": {"a": "b"}})


def test_invalid_client_context_is_refused_with_400(endpoint: int, probe: Emulator) -> None:
    injection = b'{"a": 1}\r\nX-Injected: yes'
    for bad in (injection, b"[1, 2]", b"not json", b"\xff\xfe"):
        assert client_context_seen(endpoint, bad) == (400, "InvalidRequestContentException")
    conn = http.client.HTTPConnection("127.0.0.1", endpoint, timeout=30)
    conn.request("POST", INVOKE_PATH, body=b"{}", headers={"X-Amz-Client-Context": "%%not64"})
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["errorMessage"] == (
        "Client context must be a valid Base64-encoded JSON object."
    )
    result = probe.invoke(b'{"action": "echo"}', client_context="nope")
    assert (result.status, result.error_type(), result.function_error) == (400, None, None)
    assert invoke_json(probe, {"action": "echo"}) == {"action": "echo"}


def test_an_answer_that_cannot_be_sent_fails_the_invocation(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=60.0)
    try:
        sandbox = emulator._sandbox  # below Emulator.invoke, which only passes clean values
        assert sandbox is not None
        began = time.monotonic()
        result = sandbox.invoke(b'{"action": "echo"}', cognito_identity="é\r\nX: 1")
        assert time.monotonic() - began < 30  # not left to the 60 s timeout
        assert result.status == 500
        assert json.loads(result.body)["errorType"] == "ServiceException"
        assert invoke_json(emulator, {"action": "echo"}) == {"action": "echo"}
    finally:
        emulator.stop()


def test_a_function_name_beyond_ascii_is_escaped_in_the_arn(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path).rename(tmp_path / "fn-東京\né")
    emulator = start(fn, [sys.executable, "probe.py"], timeout=60.0)
    try:
        out = invoke_json(emulator, {"action": "report"})
        headers = {k.lower(): v for k, v in out["headers"].items()}
        assert headers["lambda-runtime-invoked-function-arn"] == (
            "arn:aws:lambda:us-east-1:012345678912:function:fn-%E6%9D%B1%E4%BA%AC%0A%C3%A9"
        )
        assert out["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "fn-東京\né"
    finally:
        emulator.stop()


def raw_request(port: int, head: str, body: bytes) -> tuple[int, bytes]:
    """Send a hand-framed request; the status and body of the answer (which must come)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


CHUNKED = f"POST {INVOKE_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"


def test_chunked_invoke_bodies_are_validated(endpoint: int) -> None:
    ok = b'{"action": "echo"}'
    status, body = raw_request(endpoint, CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(ok), ok))
    assert (status, body) == (200, ok)
    for size in (b"zz", b"-1", b"0x10", b""):
        status, body = raw_request(endpoint, CHUNKED, size + b"\r\n{}\r\n0\r\n\r\n")
        assert status == 400, size
        assert size.decode() in json.loads(body)["errorMessage"]
    # A size over the limit is refused before anything is read: no body follows here.
    status, body = raw_request(endpoint, CHUNKED, b"ffffffffffff\r\n")
    assert status == 413
    assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
    length = f"POST {INVOKE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n"
    assert raw_request(endpoint, length, b"{}")[0] == 400


def test_chunked_runtime_posts_are_validated(probe: Emulator) -> None:
    port = int(probe.runtime_api.rsplit(":", 1)[1])
    head = "POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nHost: x\r\n"
    head += "Transfer-Encoding: chunked\r\n"
    for size in (b"zz", b"-1"):
        status, body = raw_request(port, head, size + b"\r\n{}\r\n0\r\n\r\n")
        assert (status, json.loads(body)["errorType"]) == (400, "BadRequest")
    assert invoke_json(probe, {"action": "echo"}) == {"action": "echo"}


def test_bootstrap_dying_between_invocations_is_not_blamed(probe: Emulator) -> None:
    first = probe.bootstrap_pid()
    result = probe.invoke(b'{"action": "exit_after"}')
    assert (result.status, result.body) == (200, b'"bye"')
    for n in range(3):  # whether or not its death has been noticed yet
        assert invoke_json(probe, {"action": "echo", "n": n}) == {"action": "echo", "n": n}
    assert probe.bootstrap_pid() not in (None, first)


def test_stop_during_an_invocation_answers_it(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=60.0)
    pid = emulator.bootstrap_pid()
    assert pid is not None
    results: list[object] = []
    caller = threading.Thread(target=lambda: results.append(emulator.invoke(b'{"action": "hang"}')))
    caller.start()
    when_hanging(fn, emulator.stop).join(30)
    caller.join(30)
    assert not caller.is_alive()
    [result] = results
    assert isinstance(result, InvokeResult) and result.status == 502
    assert b"stopped" in result.body
    assert not alive(pid)
    assert emulator.invoke(b"{}").status == 502  # after stop: answered, never queued forever


def test_invokes_queued_behind_a_timeout_run_on_the_new_bootstrap(tmp_path: Path) -> None:
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=3.0)
    results: dict[str, InvokeResult] = {}

    def call(name: str, event: bytes) -> None:
        results[name] = emulator.invoke(event)

    try:
        first = emulator.bootstrap_pid()
        threads = [threading.Thread(target=call, args=("hang", b'{"action": "hang"}'))]
        threads[0].start()
        for n in range(2):
            event = json.dumps({"action": "echo", "n": n}).encode()
            threads.append(threading.Thread(target=call, args=(f"echo{n}", event)))
        when_hanging(fn, lambda: [thread.start() for thread in threads[1:]]).join(30)
        for thread in threads:
            thread.join(60)
        assert sorted(results) == ["echo0", "echo1", "hang"]
        assert results["hang"].body == b"Task timed out after 3.00 seconds"
        for n in range(2):
            assert json.loads(results[f"echo{n}"].body) == {"action": "echo", "n": n}
        assert emulator.bootstrap_pid() not in (None, first)
    finally:
        emulator.stop()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_many_open_descriptors_do_not_break_the_long_poll(tmp_path: Path) -> None:
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # past select()'s FD_SETSIZE
    try:
        fn = probe_dir(tmp_path)
        emulator = start(fn, [sys.executable, "probe.py"], timeout=60.0)
        try:
            began = time.monotonic()
            assert invoke_json(emulator, {"action": "echo"}) == {"action": "echo"}
            assert time.monotonic() - began < 30
            pid = emulator.bootstrap_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # its watcher must see that (a pidfd numbered > 1024)
            until = time.monotonic() + 30
            while emulator.bootstrap_pid() is not None and time.monotonic() < until:
                time.sleep(0.01)
            assert emulator.bootstrap_pid() is None
            assert invoke_json(emulator, {"action": "echo", "n": 2})["n"] == 2
        finally:
            emulator.stop()
    finally:
        for fd in fds:
            os.close(fd)


# -- sor local invoke, end to end through `sor run` ----------------------------------------------


def sor(*args: str, cwd: Path = ROOT, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOR_", "AWS_LAMBDA_"))}
    return subprocess.run(
        [*SOR, *args], cwd=cwd, input=stdin, capture_output=True, timeout=60, env=env
    )


def test_local_invoke_hello_example() -> None:
    done = sor("local", "invoke", ".", "--event", "event.json", cwd=ROOT / "examples" / "hello")
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert answer["body"] == "Hello, sor!"
    assert answer["function"] == "hello"
    assert b"greeting sor" in done.stderr  # the function's log goes to stderr
    done = sor("local", "invoke", "examples/hello", "--event", "-", stdin=b'{"name": "stdin"}')
    assert json.loads(done.stdout)["body"] == "Hello, stdin!"


def test_local_invoke_function_error_exits_1(tmp_path: Path) -> None:
    (tmp_path / "sor.yml").write_text("version: 1\nruntime:\n  language: python\n  handler: h.f\n")
    (tmp_path / "h.py").write_text("def f(event, context):\n    raise KeyError('nope')\n")
    done = sor("local", "invoke", str(tmp_path))
    assert done.returncode == 1, done.stderr.decode()
    error = json.loads(done.stdout)
    assert error["errorType"] == "KeyError"


def test_local_invoke_usage_errors(tmp_path: Path) -> None:
    done = sor("local", "invoke", "examples/hello", "--event", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and b"missing.json" in done.stderr
    (tmp_path / "bad.json").write_text("{not json")
    done = sor("local", "invoke", "examples/hello", "--event", str(tmp_path / "bad.json"))
    assert done.returncode == 2 and b"bad.json" in done.stderr and b"JSON" in done.stderr
    done = sor("local", "invoke", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and b"nowhere" in done.stderr
    done = sor("local", "invoke", "examples/hello", "--env", "NOEQUALS")
    assert done.returncode == 2 and b"NOEQUALS" in done.stderr


def test_local_invoke_config_error_exits_2(tmp_path: Path) -> None:
    (tmp_path / "sor.yml").write_text("version: 1\nruntime:\n  language: cobol\n")
    done = sor("local", "invoke", str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert b"language" in done.stderr + done.stdout


def test_local_invoke_timeout_env_and_no_process_left(tmp_path: Path) -> None:
    (tmp_path / "sor.yml").write_text("version: 1\nruntime:\n  language: python\n  handler: h.f\n")
    (tmp_path / "h.py").write_text(
        "import os, time\n"
        "def f(event, context):\n"
        "    with open('pids', 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    if event.get('sleep'):\n"
        "        time.sleep(30)\n"
        "    return os.environ['GREETING']\n"
    )
    done = sor("local", "invoke", str(tmp_path), "--env", "GREETING=hi")
    assert (done.returncode, done.stdout) == (0, b'"hi"\n'), done.stderr.decode()
    began = time.monotonic()
    args = ("--event", "-", "--timeout", "1")
    done = sor("local", "invoke", str(tmp_path), *args, stdin=b'{"sleep": 1}')
    assert time.monotonic() - began < 20
    assert done.returncode == 1
    assert b"Task timed out after" in done.stdout or b"Timeout" in done.stdout
    pids = [int(line) for line in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)  # the handlers' processes went with the bootstrap


def test_twenty_concurrent_invokes_with_hanging_ones_are_all_answered(tmp_path: Path) -> None:
    """Callers beyond the one invocation that runs wait in the queue: none is refused or reset,
    not even while the ones before them hang until their timeout."""
    fn = probe_dir(tmp_path)
    emulator = start(fn, [sys.executable, "probe.py"], timeout=1.0)
    server = invoke_server(emulator, "127.0.0.1", 0)
    events = [{"action": "hang" if n in (0, 7) else "echo", "n": n} for n in range(20)]
    answers: dict[int, tuple[int, bytes] | str] = {}

    def call(n: int, sock: socket.socket) -> None:
        body = json.dumps(events[n]).encode()
        head = f"POST {INVOKE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            sock.sendall(head.encode() + body)
            response = http.client.HTTPResponse(sock)
            response.begin()
            answers[n] = (response.status, response.read())
        except OSError as exc:
            answers[n] = f"{type(exc).__name__}: {exc}"
        finally:
            sock.close()

    sockets: list[socket.socket] = []
    try:
        # Every caller connects before the server accepts any (as when its accept loop lags
        # behind a burst): the kernel must hold them all (a full listen queue drops them).
        try:
            for _ in events:
                sockets.append(socket.create_connection(("127.0.0.1", server.server_address[1]), 3))
        finally:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        threads = [threading.Thread(target=call, args=item) for item in enumerate(sockets)]
        for sock, thread in zip(sockets, threads, strict=True):
            sock.settimeout(120)
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for sock in sockets:
            sock.close()
        server.shutdown()
        server.server_close()
        emulator.stop()
    assert sorted(answers) == list(range(20))
    for n, event in enumerate(events):
        timed_out = b"Task timed out after 1.00 seconds"
        expected = timed_out if event["action"] == "hang" else json.dumps(event).encode()
        assert answers[n] == (200, expected), n
