"""The Python adapter (runtimes/python/sor_runtime.py) under `sor run`, and compared with
awslambdaric, Lambda's own Python runtime client, on the same Runtime API server."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import Answer, RuntimeApiServer

from sor.config.model import RuntimeSettings
from sor.errors import FunctionError
from sor.logs import Log
from sor.runtime.language import LanguageRuntime

ADAPTER = Path(__file__).resolve().parents[2] / "runtimes" / "python" / "sor_runtime.py"

COMPARED = textwrap.dedent(
    """
    import decimal

    class OrderError(Exception):
        pass

    def _validate(order):
        if "id" not in order:
            raise OrderError("order has no id: " + repr(sorted(order)))

    def context_fields(event, context):
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "identity": repr(context.identity),
            "client_context": repr(context.client_context),
            "has_time": 0 < context.get_remaining_time_in_millis() <= 10000,
            "attrs": sorted(a for a in dir(context) if not a.startswith("_")),
        }

    def raises(event, context):
        raise ValueError("the value is wrong")

    def nested(event, context):
        _validate(event)

    def key_error(event, context):
        return event["missing"]

    def returns_list(event, context):
        return [1, "two", 3.5, None, True, {"k": [1e100, -0.0]}]

    def returns_string(event, context):
        return "plain text"

    def returns_none(event, context):
        return None

    def returns_number(event, context):
        return 42

    def unicode(event, context):
        return {"échos": event, "emoji": "😀 ✓", "cjk": "漢字"}

    def unicode_error(event, context):
        raise RuntimeError("échec: ✗ 😞")

    def not_serialisable(event, context):
        return {"a set": {1, 2}}

    def decimals(event, context):
        return {"price": decimal.Decimal("19.5"), "qty": decimal.Decimal("3")}

    def nan(event, context):
        return {"x": float("nan"), "y": float("inf")}

    def custom_exception(event, context):
        raise OrderError()

    def not_callable(event, context):
        return 1

    value = 3
    """
)

BROKEN = {
    "syntax_bad.py": "def handler(event, context):\n    return (1,\n",
    "raises_at_import.py": "raise ImportError('needs a thing')\n",
    "value_at_import.py": "x = {}['nope']\n",
}

COMPARED_HANDLERS = [
    "compared.context_fields",
    "compared.raises",
    "compared.nested",
    "compared.key_error",
    "compared.returns_list",
    "compared.returns_string",
    "compared.returns_none",
    "compared.returns_number",
    "compared.unicode",
    "compared.unicode_error",
    "compared.not_serialisable",
    "compared.decimals",
    "compared.nan",
    "compared.custom_exception",
    "compared.value",
]
INIT_FAILURES = [
    "compared.no_such_function",
    "no_such_module.handler",
    "syntax_bad.handler",
    "raises_at_import.handler",
    "value_at_import.handler",
]

EVENTS = [{"id": 7, "name": "héllo wörld", "tags": ["a", "😀"]}, {"name": "no id"}]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "compared.py").write_text(COMPARED)
    for name, text in BROKEN.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def lambda_env(root: Path, server: RuntimeApiServer, handler: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_LAMBDA"))}
    env.update(
        AWS_LAMBDA_RUNTIME_API=server.address,
        _HANDLER=handler,
        LAMBDA_TASK_ROOT=str(root),
        SOR_LAYER_DIR=str(root / "no-layer"),
        AWS_LAMBDA_FUNCTION_NAME="compared-fn",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/compared-fn",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/01/01/[$LATEST]abc",
    )
    return env


def run_bootstrap(
    argv: list[str],
    root: Path,
    handler: str,
    events: list[Any],
    stdout: Path | None = None,
    **invoke: Any,
) -> list[Answer]:
    """Start one bootstrap against a fresh server; its answers to ``events`` (or init error)."""
    server = RuntimeApiServer()
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    proc = subprocess.Popen(
        [*argv, handler] if "awslambdaric" in argv else argv,
        cwd=root,
        env=lambda_env(root, server, handler),
        stdout=out,
        stderr=subprocess.DEVNULL,
    )
    try:
        answers = []
        for event in events:
            pending = server.submit(event, **invoke)
            while not pending.done.wait(0.05):
                if server.init_errors:
                    return [server.init_errors[0]]
                assert proc.poll() is None or server.init_errors, f"{argv} exited"
            assert pending.answer is not None
            answers.append(pending.answer)
        return answers
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            server.close()
            if stdout:
                out.close()  # type: ignore[union-attr]


SOR = [sys.executable, "-m", "sor", "run"]
RIC = [sys.executable, "-m", "awslambdaric"]


def normalise(answer: Answer, root: Path) -> tuple[str, Any]:
    """The posted document without what legitimately differs: request ids and file paths."""
    doc = answer.json()
    if isinstance(doc, dict):
        doc.pop("requestId", None)
    text = json.dumps(doc, ensure_ascii=False)
    text = text.replace(str(root), "<root>")
    text = re.sub(r'File \\"[^"]*?/(importlib/__init__\.py)', r'File \\"<lib>/\1', text)
    doc = json.loads(text)
    if isinstance(doc, dict) and isinstance(doc.get("stackTrace"), list):
        # A handler that fails before its own code runs (not callable) leaves only the runtime's
        # own frame, which awslambdaric keeps: its file and line are the runtime's.
        doc["stackTrace"] = [
            "<runtime frame>" if "_sor_adapter/" in f or "awslambdaric/" in f else f
            for f in doc["stackTrace"]
        ]
    return answer.kind, doc


@pytest.mark.parametrize("handler", COMPARED_HANDLERS)
def test_same_answers_as_awslambdaric(root: Path, handler: str) -> None:
    ours = run_bootstrap(SOR, root, handler, EVENTS)
    theirs = run_bootstrap(RIC, root, handler, EVENTS)
    assert [normalise(a, root) for a in ours] == [normalise(a, root) for a in theirs]
    assert ours[0].kind in ("response", "error")


@pytest.mark.parametrize("handler", INIT_FAILURES)
def test_same_init_errors_as_awslambdaric(root: Path, handler: str) -> None:
    (ours,) = run_bootstrap(SOR, root, handler, [{}])
    (theirs,) = run_bootstrap(RIC, root, handler, [{}])
    assert ours.kind == theirs.kind == "init_error"
    assert normalise(ours, root) == normalise(theirs, root)


def test_init_error_names(root: Path) -> None:
    names = {}
    for handler in INIT_FAILURES[:3]:
        (answer,) = run_bootstrap(SOR, root, handler, [{}])
        names[handler] = answer.json()
    assert names["compared.no_such_function"]["errorType"] == "Runtime.HandlerNotFound"
    assert names["no_such_module.handler"]["errorMessage"] == (
        "Unable to import module 'no_such_module': No module named 'no_such_module'"
    )
    assert names["syntax_bad.handler"]["errorType"] == "Runtime.UserCodeSyntaxError"


def test_malformed_handler_name(root: Path) -> None:
    # sor's config check refuses such a handler first (Sor.ConfigError); the adapter, started
    # directly, still names it as Lambda does.
    settings = RuntimeSettings(language="python", handler="nodots")
    rt = LanguageRuntime(settings, task_root=root, env=dict(os.environ), log=Log(io.StringIO()))
    with pytest.raises(FunctionError) as info:
        rt.start(time.monotonic() + 10)
    assert info.value.error_type == "Runtime.MalformedHandlerName"
    assert "Bad handler 'nodots'" in info.value.message


OWN = textwrap.dedent(
    """
    import asyncio, os, sys

    _loops = []

    async def async_handler(event, context):
        await asyncio.sleep(0.01)
        _loops.append(id(asyncio.get_running_loop()))
        return {"async": True, "same_loop": len(set(_loops)) == 1, "calls": len(_loops)}

    async def async_raises(event, context):
        await asyncio.sleep(0)
        raise KeyError("async key")

    def environment(event, context):
        return {
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "stdin": sys.stdin.read(),
            "cwd": os.getcwd(),
            "remaining": context.get_remaining_time_in_millis(),
            "client": context.client_context.client.app_title,
            "custom": context.client_context.custom,
            "cognito": context.identity.cognito_identity_id,
            "w3c": context.w3c(),
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        }
    """
)


@pytest.fixture
def own_root(tmp_path: Path) -> Path:
    (tmp_path / "own.py").write_text(OWN)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "inner.py").write_text("def handler(event, context):\n    return 'deep'\n")
    return tmp_path


def test_async_handlers_share_one_loop(own_root: Path) -> None:
    answers = run_bootstrap(SOR, own_root, "own.async_handler", [{}, {}, {}])
    assert [a.json() for a in answers][-1] == {"async": True, "same_loop": True, "calls": 3}


def test_async_handler_errors_hide_asyncio_frames(own_root: Path) -> None:
    (answer,) = run_bootstrap(SOR, own_root, "own.async_raises", [{}])
    error = answer.json()
    assert error["errorType"] == "KeyError" and error["errorMessage"] == "'async key'"
    assert len(error["stackTrace"]) == 1 and "own.py" in error["stackTrace"][0]


def test_handler_in_a_folder(own_root: Path) -> None:
    (answer,) = run_bootstrap(SOR, own_root, "pkg/inner.handler", [{}])
    assert answer.json() == "deep"


def test_context_environment_and_stdin(own_root: Path) -> None:
    client_context = {
        "client": {"app_title": "the app"},
        "custom": {"k": "v"},
        "env": {},
        "w3c": {"traceparent": "00-abc-def-01", "bogus": 1},
    }
    headers = {
        "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
        "Lambda-Runtime-Client-Context": json.dumps(client_context),
        "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "cid-1"}),
    }
    (answer,) = run_bootstrap(SOR, own_root, "own.environment", [{}], headers=headers, timeout=10)
    got = answer.json()
    assert got["trace"] == "Root=1-5759e988-bd862e3fe1be46a994272793"
    assert got["stdin"] == ""
    assert got["cwd"] == str(own_root)
    # The time left is the time until sor's graceful timeout (0.3 s before Lambda's deadline).
    assert 0 < got["remaining"] <= 9700
    assert got["client"] == "the app" and got["custom"] == {"k": "v"}
    assert got["cognito"] == "cid-1"
    assert got["w3c"] == {"traceparent": "00-abc-def-01"}
    # The protocol pipes are not on fd 3 and 4 any more, where a handler could write to them.
    assert 3 not in got["fds"] or 4 not in got["fds"]


def test_logging_module_gets_lambda_format(own_root: Path, tmp_path: Path) -> None:
    (own_root / "logs.py").write_text(
        textwrap.dedent(
            """
            import logging
            logger = logging.getLogger()
            logger.setLevel(logging.INFO)

            def handler(event, context):
                logger.info("hello %s", "there")
                print("printed")
                return 1
            """
        )
    )
    out = tmp_path / "stdout.txt"
    (answer,) = run_bootstrap(SOR, own_root, "logs.handler", [{}], stdout=out, request_id="rq-9")
    assert answer.json() == 1
    lines = out.read_text().splitlines()
    assert "printed" in lines
    assert re.fullmatch(r"\[INFO\]\t\d{4}-\d\d-\d\dT[\d:.]+Z\trq-9\thello there", lines[0]), lines


def test_cloudevent_signature(own_root: Path) -> None:
    pytest.importorskip("cloudevents.core")
    (own_root / "ce.py").write_text(
        textwrap.dedent(
            """
            def handler(event, context):
                return {"type": event.get_type(), "source": event.get_source(),
                        "data": event.get_data(), "cls": type(event).__name__}
            """
        )
    )
    (own_root / "sor.yml").write_text(
        "version: 1\nruntime:\n  handler: ce.handler\n  signature: cloudevent\n"
    )
    structured = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/tests",
        "type": "com.example.tested",
        "datacontenttype": "application/json",
        "data": {"x": 1},
    }
    (answer,) = run_bootstrap(SOR, own_root, "", [structured])
    assert answer.kind == "response", answer.body
    assert answer.json() == {
        "type": "com.example.tested",
        "source": "/tests",
        "data": {"x": 1},
        "cls": "CloudEvent",
    }


def test_adapter_imports_only_light_modules(tmp_path: Path) -> None:
    # What the adapter imports before it reads its first request: its server module.
    code = (
        f"import sys; sys.path.insert(0, {str(ADAPTER.parent)!r}); import _sor_adapter.server; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('asyncio','cloudevents','inspect','logging','sor','json','debugpy','traceback'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    loaded = done.stdout.decode().strip().split(",")
    assert "asyncio" not in loaded and "cloudevents" not in loaded and "sor" not in loaded
    assert "debugpy" not in loaded and "traceback" not in loaded and "logging" not in loaded
    assert "json" in loaded


DEBUGGED = textwrap.dedent(
    """
    import sys

    def echo(event, context):
        return {"event": event, "debugpy_loaded": "debugpy" in sys.modules}
    """
)


class _Listener:
    """A debugger's listening socket on 127.0.0.1: records the connections it receives."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.conns: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # held open, silent: a debugger nobody attaches through
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _logged(log: io.StringIO, text: str) -> bool:
    """True once ``text`` is in the log: the runtime's stderr reaches it from another thread."""
    give_up = time.monotonic() + 5
    while text not in log.getvalue():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.02)
    return True


def _debug_invoker(root: Path, debug_on: bool, command: tuple[str, ...] = ()) -> Any:
    from sor.config.model import Config, DebugSettings
    from sor.runtime.api import RuntimeApiClient
    from sor.runtime.invocation import Invoker

    (root / "debugged.py").write_text(DEBUGGED)
    server = RuntimeApiServer()
    api = RuntimeApiClient(server.address)
    log = io.StringIO()
    settings = RuntimeSettings(handler="debugged.echo", command=command)
    rt = LanguageRuntime(settings, task_root=root, env=dict(os.environ), log=Log(log))
    config = Config(runtime=settings, debug=DebugSettings(enabled=debug_on))
    invoker = Invoker(config, rt, api, log=Log(log), env=dict(os.environ))
    return server, api, rt, invoker, log


@pytest.mark.parametrize("debug_on", [True, False])
def test_debug_target_connects_debugpy_and_the_handler_runs(root: Path, debug_on: bool) -> None:
    pytest.importorskip("debugpy")
    listener = _Listener()
    server, api, rt, invoker, log = _debug_invoker(root, debug_on)
    try:
        rt.start(time.monotonic() + 10)
        event = {"a": 1, "_debugProxy": f"127.0.0.1:{listener.port}"}
        pending = server.submit(event, timeout=3.0)  # waits for the debugger at most ~1.5 s
        began = time.monotonic()
        assert invoker.handle(api.next()) == "success"
        body = server.wait_answer(pending).json()
        assert body["event"] == {"a": 1}  # the handler never sees _debugProxy
        assert time.monotonic() - began < 5
        assert listener.connected.wait(0 if not debug_on else 5) is debug_on
        assert body["debugpy_loaded"] is debug_on  # imported only when a target arrives
        if debug_on:
            assert _logged(log, "did not answer in time; running without it")
    finally:
        rt.stop()
        api.close()
        server.close()
        listener.close()


def test_debug_target_without_debugpy_is_a_log_line(root: Path) -> None:
    listener = _Listener()
    # -S: no site-packages, so no debugpy, as in a function that did not bundle it
    server, api, rt, invoker, log = _debug_invoker(root, True, (sys.executable, "-S"))
    try:
        rt.start(time.monotonic() + 10)
        pending = server.submit({"_debugProxy": f"127.0.0.1:{listener.port}"}, timeout=5.0)
        assert invoker.handle(api.next()) == "success"
        assert server.wait_answer(pending).json()["event"] == {}
        assert _logged(log, "debugpy is not installed in the function")
        assert not listener.connected.is_set()
    finally:
        rt.stop()
        api.close()
        server.close()
        listener.close()
