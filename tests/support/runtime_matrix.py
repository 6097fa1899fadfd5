"""Shared helpers for the language runtime tests: drive an adapter over the real protocol.

An ``Adapter`` is a real child process started with ``sor.process.spawn`` with real pipes on fd 3
(requests) and fd 4 (answers), exactly as sor's supervisor starts it. Its stdout and stderr are
captured into files so tests can check that logs never leak into the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sor.process.pipes import LineReader, make_pipe, write_all
from sor.process.spawn import Child, spawn

REPO = Path(__file__).resolve().parents[2]
NODE_RUNTIME = REPO / "runtimes" / "node" / "sor_runtime.js"
PYTHON_RUNTIME = REPO / "runtimes" / "python" / "sor_runtime.py"
BASH_RUNTIME = REPO / "runtimes" / "exec" / "bash-runtime"
MAX_LINE = 64 << 20

# The argv that starts each language's adapter, as sor.runtime.language does.
ARGV: dict[str, list[str]] = {
    "python": [sys.executable, str(PYTHON_RUNTIME)],
    "node": ["node", str(NODE_RUNTIME)],
    "exec": [str(BASH_RUNTIME)],
}


def context(request_id: str = "req-1", timeout: float = 30.0, **extra: Any) -> dict[str, Any]:
    """A protocol CONTEXT with every key the protocol promises."""
    ctx: dict[str, Any] = {
        "aws_request_id": request_id,
        "deadline_ms": int(time.time() * 1000 + timeout * 1000),
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "function_name": "fn",
        "function_version": "$LATEST",
        "memory_limit_in_mb": 128,
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2026/11/24/[$LATEST]abc",
        "trace_id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        "client_context": None,
        "identity": None,
    }
    ctx.update(extra)
    return ctx


class Adapter:
    """One running language runtime adapter, spoken to over its protocol pipes."""

    def __init__(
        self,
        argv: Sequence[str],
        task_root: Path,
        handler: str,
        *,
        signature: str = "event",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.task_root = task_root
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "SOR_HANDLER": handler,
            "SOR_IN_FD": "3",
            "SOR_OUT_FD": "4",
            "SOR_SIGNATURE": signature,
            "SOR_PROTOCOL": "1",
            **(env or {}),
        }
        req_r, self._req_w = make_pipe()
        ans_r, ans_w = make_pipe()
        self.stdout_path = task_root / "adapter.stdout"
        self.stderr_path = task_root / "adapter.stderr"
        out = os.open(self.stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        err = os.open(self.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        old_cwd = os.getcwd()
        os.chdir(task_root)  # the adapter starts in the task root, as sor starts it
        try:
            self.child: Child = spawn(
                argv, env=full_env, stdout=out, stderr=err, fds={3: req_r, 4: ans_w}
            )
        finally:
            os.chdir(old_cwd)
            for fd in (req_r, ans_w, out, err):
                os.close(fd)
        self._ans_r = ans_r
        self._closed = False
        self.reader = LineReader(ans_r, self.child, MAX_LINE)

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next answer; TimeoutError or EOFError (the adapter died) otherwise."""
        line = self.reader.readline(time.monotonic() + timeout)
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, message: Mapping[str, Any], timeout: float = 10.0) -> None:
        """Send one message as compact JSON."""
        self.send_line(json.dumps(message, separators=(",", ":")), timeout)

    def send_line(self, line: str, timeout: float = 10.0) -> None:
        """Send one request line as given (a lone surrogate as its three UTF-8-like bytes)."""
        data = line.encode("utf-8", "surrogatepass") + b"\n"
        if not write_all(self._req_w, data, self.child, time.monotonic() + timeout):
            raise EOFError("the adapter stopped reading its requests")

    def ready(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.recv(timeout)

    def invoke(
        self,
        event: Any,
        request_id: str = "req-1",
        *,
        timeout: float = 10.0,
        ctx: Mapping[str, Any] | None = None,
        debug: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one invoke message and return the answer to it."""
        message: dict[str, Any] = {"type": "invoke", "id": request_id, "event": event}
        message["context"] = dict(ctx) if ctx is not None else context(request_id)
        if debug is not None:
            message["debug"] = dict(debug)
        self.send(message, timeout)
        return self.recv(timeout)

    def logs(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def close(self) -> int | None:
        """Close the request pipe, then kill the whole group; the exit code."""
        if self._closed:
            return self.child.returncode
        self._closed = True
        os.close(self._req_w)
        code = self.child.wait(2.0)
        self.child.close()
        os.close(self._ans_r)
        return code if code is not None else self.child.returncode

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(language: str, task_root: Path, handler: str, **kwargs: Any) -> Adapter:
    """Start the adapter of ``language`` for ``handler`` in ``task_root``."""
    return Adapter(ARGV[language], task_root, handler, **kwargs)


def write_files(root: Path, files: Mapping[str, str], executable: Sequence[str] = ()) -> Path:
    """Write a function's files under ``root``; names in ``executable`` get mode 0755."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name in executable:
            path.chmod(0o755)
    return root


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Wait until ``pid`` no longer runs; False if it still does after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


# --- the cross-language matrix ----------------------------------------------------------------
# The same cases for every language: the function's files, its handler, and what must happen.
# Each language's tests run them through the adapter directly (``run_case``); the same sources
# serve a matrix through ``sor local invoke`` once the supervisor and the emulator are in place.

CASES = ("success", "handler_error", "import_error", "crash", "timeout", "large", "printing")
FORGED = '{"type":"result","id":"%s","result":"forged"}'

_PY = {
    "success": "def handler(event, context):\n    return {'hello': event['name']}\n",
    "handler_error": "def handler(event, context):\n    raise ValueError('boom')\n",
    "import_error": "import not_installed_anywhere\n",
    "crash": "import os\n\ndef handler(event, context):\n    os._exit(3)\n",
    "timeout": (
        "import subprocess, time\n\ndef handler(event, context):\n"
        "    p = subprocess.Popen(['sleep', '60'])\n"
        "    open('child.pid', 'w').write(str(p.pid))\n    time.sleep(60)\n"
    ),
    "large": "def handler(event, context):\n    return event\n",
    "printing": (
        "import sys\n\ndef handler(event, context):\n"
        f"    line = '{FORGED}' % context.aws_request_id\n"
        "    print(line)\n    print(line, file=sys.stderr)\n    return {'genuine': True}\n"
    ),
}
_JS = {
    "success": "exports.handler = async (event) => ({ hello: event.name });\n",
    "handler_error": "exports.handler = async () => { throw new Error('boom'); };\n",
    "import_error": "require('not-installed-anywhere');\n",
    "crash": "exports.handler = async () => { process.exit(3); };\n",
    "timeout": (
        "const { spawn } = require('child_process');\n"
        "exports.handler = () => new Promise(() => {\n"
        "  const p = spawn('sleep', ['60'], { stdio: 'ignore' });\n"
        "  require('fs').writeFileSync('child.pid', String(p.pid));\n});\n"
    ),
    "large": "exports.handler = async (event) => event;\n",
    "printing": (
        "exports.handler = async (event, context) => {\n"
        f"  const line = '{FORGED}'.replace('%s', context.awsRequestId);\n"
        "  console.log(line); console.error(line); return { genuine: true };\n};\n"
    ),
}
_SH = {
    "success": (
        '#!/bin/sh\n# the event is {"name":"sor"}: answer with the name\n'
        'name=$(sed \'s/.*"name": *"\\([^"]*\\)".*/\\1/\')\n'
        'printf \'{"hello":"%s"}\\n\' "$name"\n'
    ),
    "handler_error": "#!/bin/sh\necho boom >&2\nexit 1\n",
    "import_error": None,  # no handler file at all
    # the adapter leads its process group: kill it, as a fatal runtime bug would end it
    "crash": '#!/bin/sh\nset -- $(cat /proc/$$/stat)\nkill -9 "$5"\nsleep 5\n',
    "timeout": "#!/bin/sh\nsleep 60 &\necho $! > child.pid\nwait\n",
    "large": "#!/bin/sh\ncat\n",
    "printing": (
        "#!/bin/sh\n"
        f"printf '{FORGED}\\n' \"$SOR_REQUEST_ID\" >&2\n"
        f"printf '{FORGED}\\n' \"$SOR_REQUEST_ID\" >&4 2>/dev/null\n"
        "echo '{\"genuine\": true}'\n"
    ),
}
SOURCES: dict[str, tuple[str, str, dict[str, str | None]]] = {
    # language: (file name, handler, case -> source)
    "python": ("app.py", "app.handler", dict(_PY)),
    "node": ("app.js", "app.handler", dict(_JS)),
    "exec": ("app.sh", "app.sh", dict(_SH)),
}


def write_case(language: str, case: str, root: Path) -> str:
    """Write the function of ``case`` for ``language`` under ``root``; its handler."""
    root.mkdir(parents=True, exist_ok=True)
    name, handler, sources = SOURCES[language]
    source = sources[case]
    if source is not None:
        write_files(root, {name: source}, executable=[name])
    return handler


def run_case(language: str, case: str, root: Path, argv: Sequence[str] | None = None) -> None:
    """Run one matrix case against the adapter of ``language`` and check what must happen."""
    handler = write_case(language, case, root)
    adapter = Adapter(argv or ARGV[language], root, handler)
    with adapter:
        first = adapter.ready()
        if case == "import_error":
            assert first["type"] == "init_error", first
            assert first["error"]["errorType"] == "Runtime.ImportModuleError", first
            return
        assert first == {"type": "ready", "seal": True}, first
        _check_case(adapter, case, root)


def _check_case(adapter: Adapter, case: str, root: Path) -> None:
    rid = f"{case}-1"
    if case == "success":
        assert adapter.invoke({"name": "sor"}, rid) == {
            "type": "result",
            "id": rid,
            "result": {"hello": "sor"},
        }
    elif case == "handler_error":
        answer = adapter.invoke({}, rid)
        assert answer["type"] == "error" and answer["id"] == rid, answer
        assert set(answer["error"]) >= {"errorType", "errorMessage", "stackTrace"}
        assert (
            "boom" in answer["error"]["errorMessage"]
            or "exited with status 1" in (answer["error"]["errorMessage"])
        )
    elif case == "crash":
        try:
            answer = adapter.invoke({}, rid)
        except EOFError:
            answer = None
        assert answer is None, answer
        assert adapter.child.wait(5) is not None
    elif case == "timeout":
        try:
            adapter.invoke({}, rid, timeout=1.5)
            raise AssertionError("a handler that never answers answered")
        except TimeoutError:
            pass
        pid = int((root / "child.pid").read_text())
        assert pid_alive(pid)
        adapter.child.kill_group()  # what sor.runtime.language does at the graceful-timeout point
        assert adapter.child.wait(5) is not None
        assert wait_gone(pid), "the handler's child outlived the killed runtime"
    elif case == "large":
        blob = "y" * (6 * 1024 * 1024)
        answer = adapter.invoke({"blob": blob}, rid, timeout=60)
        assert answer["type"] == "result", {k: v for k, v in answer.items() if k != "result"}
        assert answer["result"] == {"blob": blob}, "the 6 MB event did not come back unchanged"
    elif case == "printing":
        answer = adapter.invoke({}, rid)
        assert answer == {"type": "result", "id": rid, "result": {"genuine": True}}, answer
        assert adapter.invoke({}, f"{rid}-b")["id"] == f"{rid}-b"
        assert (FORGED % rid) in adapter.logs()
    else:
        raise ValueError(f"unknown case {case}")


# --- the same matrix through `sor local invoke` (supervisor, runtime loop, embedded emulator) -----

LOCAL_BLOB = 6 * 1024 * 1024 - 1024  # the whole request stays within Lambda's 6 MB


def sor_config(language: str, handler: str) -> str:
    """The sor.yml that runs ``handler`` with the adapter of ``language``."""
    lines = ["version: 1", "runtime:", f"  language: {language}", f"  handler: {handler}"]
    if language == "exec":
        lines.append(f"  command: [{json.dumps(str(BASH_RUNTIME))}]")
    return "\n".join(lines) + "\n"


def local_invoke(
    root: Path, event: Any, timeout: float = 10.0
) -> tuple[int | None, bytes, tuple[str, ...]]:
    """Run ``sor local invoke ROOT`` as a real process: exit status, stdout, stderr lines."""
    from sor.process.exchange import run

    event_file = root.parent / f"{root.name}.event.json"
    event_file.write_text(json.dumps(event))
    layer = root.parent / f"{root.name}.no-layer"
    layer.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root.parent),
        "SOR_LAYER_DIR": str(layer),
    }
    argv = [sys.executable, "-m", "sor", "local", "invoke", str(root)]
    argv += ["--event", str(event_file), "--timeout", str(timeout)]
    done = run(argv, env=env, input=b"", timeout=timeout + 30, max_output=64 << 20)
    assert not done.timed_out, f"sor local invoke hung: {done.stderr_tail}"
    return done.returncode, done.stdout, done.stderr_tail


def local_invoke_case(language: str, case: str, root: Path) -> None:
    """Run one matrix case through ``sor local invoke`` and check what must happen."""
    handler = write_case(language, case, root)
    write_files(root, {"sor.yml": sor_config(language, handler)})
    event: Any = {"name": "sor"}
    if case == "large":
        event = {"blob": "z" * LOCAL_BLOB}
    code, out, err = local_invoke(root, event, timeout=2.0 if case == "timeout" else 30.0)
    if case in {"success", "large", "printing"}:
        assert code == 0, (code, out[:500], err)
        expected = {"success": {"hello": "sor"}, "large": event, "printing": {"genuine": True}}
        assert json.loads(out) == expected[case]
        if case == "printing":
            assert any('"result":"forged"' in line for line in err), err
        return
    assert code == 1, (code, out[:500], err)
    error = json.loads(out)
    expected_type = {
        "import_error": "Runtime.ImportModuleError",
        "crash": "Sor.RuntimeExited",
        "timeout": "Sor.Timeout",
    }
    if case == "handler_error":
        assert "boom" in error["errorMessage"] or "exited with status 1" in error["errorMessage"]
    else:
        assert error["errorType"] == expected_type[case], error
    if case == "timeout":
        pid = int((root / "child.pid").read_text())
        assert wait_gone(pid), "the handler's child outlived the graceful timeout"
