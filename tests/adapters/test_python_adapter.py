"""The Python adapter over its real protocol pipes: deferred load and per-invocation debugging."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import start, wait_gone, write_files

# Appends a line to imported.log when imported: proves whether user code ran.
MARKED = """
import os, sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imported.log"), "a") as f:
    f.write("imported\\n")

def handler(event, context):
    return {
        "pid": os.getpid(),
        "traced": sys.gettrace() is not None,
        "debugpy": "debugpy" in sys.modules,
        "event": event,
        "sor_load": os.environ.get("SOR_LOAD"),
    }
"""

DEFERRED = {"SOR_LOAD": "deferred"}


def _imports(root: Path) -> int:
    marker = root / "imported.log"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


# --- SOR_LOAD=deferred -------------------------------------------------------------------------


def test_deferred_load_runs_no_user_code_before_load(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": MARKED})
    with start("python", tmp_path, "app.handler", env=DEFERRED) as adapter:
        with pytest.raises(TimeoutError):
            adapter.recv(0.5)  # no `ready` before `load`
        assert _imports(tmp_path) == 0
        adapter.send({"type": "load"})
        assert adapter.ready() == {"type": "ready", "seal": True}
        assert _imports(tmp_path) == 1
        answer = adapter.invoke({"a": 1}, "after-load")
        assert answer["result"]["event"] == {"a": 1}
        assert answer["result"]["pid"] == adapter.child.pid
        assert answer["result"]["sor_load"] is None  # sor's own variable is not the handler's
        assert adapter.close() == 0


def test_deferred_load_eof_before_load_exits_quietly(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": MARKED})
    adapter = start("python", tmp_path, "app.handler", env=DEFERRED)
    assert adapter.close() == 0
    assert adapter.logs() == ""
    assert _imports(tmp_path) == 0


def test_deferred_load_other_message_first_is_a_protocol_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": MARKED})
    with start("python", tmp_path, "app.handler", env=DEFERRED) as adapter:
        adapter.send({"type": "invoke", "id": "early", "event": {}, "context": {}})
        with pytest.raises(EOFError):
            adapter.recv(5)
        assert wait_gone(adapter.child.pid)
        assert adapter.child.poll() == 2
        assert "protocol error" in adapter.logs() and '"load"' in adapter.logs()
    assert _imports(tmp_path) == 0


def test_deferred_load_reports_init_errors_after_load(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": MARKED})
    with start("python", tmp_path, "missing.handler", env=DEFERRED) as adapter:
        adapter.send({"type": "load"})
        answer = adapter.ready()
        assert answer["type"] == "init_error"
        assert answer["error"]["errorType"] == "Runtime.ImportModuleError"


def test_without_sor_load_the_handler_loads_at_start(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": MARKED})
    with start("python", tmp_path, "app.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        assert _imports(tmp_path) == 1


# --- debugging ends with its invocation --------------------------------------------------------


class _Client:
    """A minimal DAP client in listen mode, as VS Code's `"listen"` attach configuration."""

    def __init__(self, breakpoint_file: Path, line: int) -> None:
        self.breakpoint = {
            "source": {"path": str(breakpoint_file)},
            "breakpoints": [{"line": line}],
        }
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.events: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                self._session(conn)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _session(self, conn: socket.socket) -> None:
        buf = b""
        seq = 0

        def send(command: str, arguments: dict[str, Any]) -> None:
            nonlocal seq
            seq += 1
            body = json.dumps(
                {"seq": seq, "type": "request", "command": command, "arguments": arguments}
            ).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

        def recv() -> dict[str, Any]:
            nonlocal buf
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(head.split(b":")[1])
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                rest += chunk
            buf = rest[length:]
            message: dict[str, Any] = json.loads(rest[:length])
            return message

        send("initialize", {"adapterID": "debugpy", "clientID": "sor-test"})
        send("attach", {"justMyCode": False})
        configured = False
        while True:
            try:
                message = recv()
            except (EOFError, OSError):
                return  # the debugged process ended the session
            self.events.append(
                f"{message['type']}:{message.get('event') or message.get('command')}"
            )
            if message.get("event") == "initialized" and not configured:
                configured = True
                send("setBreakpoints", self.breakpoint)
                send("configurationDone", {})
            if message.get("event") == "stopped":  # the breakpoint: let the handler go on
                send("continue", {"threadId": message["body"]["threadId"]})

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


def test_debug_session_ends_with_its_invocation(tmp_path: Path) -> None:
    pytest.importorskip("debugpy")
    write_files(tmp_path, {"app.py": MARKED})
    line = MARKED.splitlines().index("    return {") + 1
    client = _Client(tmp_path / "app.py", line)
    try:
        with start("python", tmp_path, "app.handler") as adapter:
            assert adapter.ready() == {"type": "ready", "seal": True}
            debugged = adapter.invoke(
                {"d": 1}, "dbg", debug={"host": "127.0.0.1", "port": client.port}, timeout=20
            )
            assert debugged["type"] == "result", adapter.logs()
            # The handler ran with its own thread traced: breakpoints in it can be hit.
            assert debugged["result"]["traced"] is True, adapter.logs()
            assert debugged["result"]["debugpy"] is True
            assert debugged["result"]["pid"] != adapter.child.pid
            assert wait_gone(debugged["result"]["pid"])  # the debugged process is gone
            client.thread.join(10)
            assert not client.thread.is_alive()  # ... and the debugger saw the session end
            assert client.error is None, client.error
            assert "event:initialized" in client.events, client.events
            assert "event:stopped" in client.events, client.events  # the breakpoint was hit
            # The next invocation: another process, no debugger, no debugpy.
            after = adapter.invoke({"n": 2}, "next")
            assert after["result"] == {
                "pid": adapter.child.pid,
                "traced": False,
                "debugpy": False,
                "event": {"n": 2},
                "sor_load": None,
            }
            assert _imports(tmp_path) == 1  # the handler was not loaded again
            # A later debug target elsewhere gets a session of its own, not the first one's.
            other = _Client(tmp_path / "app.py", line)
            try:
                again = adapter.invoke(
                    {"d": 3}, "dbg-2", debug={"host": "127.0.0.1", "port": other.port}, timeout=20
                )
                assert again["result"]["traced"] is True, adapter.logs()
                other.thread.join(10)
                assert "event:stopped" in other.events, other.events
                assert client.events.count("event:stopped") == 1
            finally:
                other.close()
    finally:
        client.close()


def test_debugged_process_that_dies_gets_an_error_answer(tmp_path: Path) -> None:
    pytest.importorskip("debugpy")
    handler = "import os\n\ndef handler(event, context):\n    os._exit(7)\n"
    write_files(tmp_path, {"app.py": handler})
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens: the handler runs without debugger
    with start("python", tmp_path, "app.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        began = time.monotonic()
        answer = adapter.invoke({}, "dies", debug={"host": "127.0.0.1", "port": port})
        assert time.monotonic() - began < 5  # did not hang
        assert answer["type"] == "error"
        assert answer["error"]["errorType"] == "Runtime.ExitError"
        assert "status 7" in answer["error"]["errorMessage"]
        assert adapter.child.poll() is None  # the adapter itself keeps serving


# --- what the protocol does not allow ----------------------------------------------------------


def test_another_protocol_version_is_an_init_error(tmp_path: Path) -> None:
    root = write_files(tmp_path, {"handler.py": "def handler(event, context):\n    return 1\n"})
    with start("python", root, "handler.handler", env={"SOR_PROTOCOL": "2"}) as adapter:
        message = adapter.recv()
        assert message["type"] == "init_error"
        assert message["error"]["errorType"] == "Runtime.UnsupportedProtocol"
        assert adapter.child.wait(5) == 1


def test_an_event_that_is_not_json_is_an_unmarshal_error_at_once(tmp_path: Path) -> None:
    # sor passes the event's bytes as Lambda sent them: the adapter is the one that parses them.
    root = write_files(tmp_path, {"handler.py": "def handler(event, context):\n    return event\n"})
    with start("python", root, "handler.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        began = time.monotonic()
        adapter.send_line('{"type":"invoke","id":"r-1","event":{"a":,"context":{}}')
        answer = adapter.recv(timeout=5)
        assert time.monotonic() - began < 2
        assert (answer["type"], answer["id"]) == ("error", "r-1")
        assert answer["error"]["errorType"] == "Runtime.UnmarshalError"
        assert answer["error"]["errorMessage"].startswith("Unable to unmarshal input: ")
        deep = "[" * 100_000 + "]" * 100_000  # valid JSON, too deep for the parser
        adapter.send_line('{"type":"invoke","id":"r-2","event":' + deep + ',"context":{}}')
        answer = adapter.recv(timeout=5)
        assert (answer["id"], answer["error"]["errorType"]) == ("r-2", "Runtime.UnmarshalError")
        assert adapter.invoke({"still": "serving"}, "r-3")["result"] == {"still": "serving"}


def test_a_message_without_an_id_ends_the_adapter_at_once(tmp_path: Path) -> None:
    root = write_files(tmp_path, {"handler.py": "def handler(event, context):\n    return event\n"})
    with start("python", root, "handler.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        adapter.send_line("this is not a request")
        with pytest.raises(EOFError):
            adapter.recv(timeout=5)
        assert adapter.child.wait(5) == 2
        assert "protocol error" in adapter.logs()


def test_user_modules_named_like_the_adapters_are_the_users(tmp_path: Path) -> None:
    # The adapter's modules (server, context, errors, logs, loading, events, debugging) live in
    # its own package, off sys.path while user code runs: a function's modules of the same
    # names are the ones the handler imports, and the adapter keeps working beside them.
    names = ("server", "context", "errors", "logs", "loading", "events", "debugging")
    files = {f"{name}.py": f"WHO = 'user {name}'\n" for name in names}
    files["handler.py"] = (
        "import " + ", ".join(names) + "\n"
        "def handler(event, context_):\n"
        "    return [m.WHO for m in (" + ", ".join(names) + ")]\n"
    )
    root = write_files(tmp_path, files)
    with start("python", root, "handler.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        answer = adapter.invoke({})
        assert answer["result"] == [f"user {name}" for name in names]
