"""The `_debugProxy` policy (sor.runtime.debug) and the Node adapter's outbound inspector bridge."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import context, local_invoke, sor_config, start, write_files

from sor.config.model import DebugSettings
from sor.logs import Log
from sor.runtime.debug import DebugTarget, allowed, extract, parse

ON = DebugSettings(enabled=True)
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _log() -> tuple[Log, io.StringIO]:
    stream = io.StringIO()
    return Log(stream), stream


# --- the policy --------------------------------------------------------------------------------


def test_disabled_removes_the_key_and_warns_without_the_payload() -> None:
    log, out = _log()
    event = {"_debugProxy": "10.0.0.1:9229", "secret": "s3cr3t-value"}
    assert extract(event, DebugSettings(), log, "rid-1") is None
    assert event == {"secret": "s3cr3t-value"}
    assert "remote debugging is off" in out.getvalue()
    assert "rid-1" in out.getvalue()
    assert "s3cr3t-value" not in out.getvalue()


def test_enabled_gives_a_target_and_removes_the_key() -> None:
    log, _ = _log()
    event = {"_debugProxy": "debug.example.com:9229", "a": 1}
    assert extract(event, ON, log) == DebugTarget("debug.example.com", 9229)
    assert event == {"a": 1}


def test_events_without_the_key_or_not_dicts_are_untouched() -> None:
    log, out = _log()
    event = {"a": 1}
    assert extract(event, ON, log) is None
    assert event == {"a": 1}
    assert extract(["_debugProxy"], ON, log) is None
    assert extract("x", ON, log) is None
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("nocolon", "expected host:port"),
        (":9229", "the host is missing"),
        ("host:abc", "the port must be a number"),
        ("host:\u00b9\u00b2", "the port must be a number"),  # digits, but not ASCII ones
        ("host:0", "between 1 and 65535"),
        ("host:70000", "between 1 and 65535"),
        ("bad host!:9229", "neither a host name nor an IP address"),
        # the host rule of debug.allow in sor.yml (sor.config.rules), not a looser one of its own
        ("a..b:9229", "neither a host name nor an IP address"),
        ({"host": "relay.example.com\n", "port": 9229}, "neither a host name nor an IP address"),
        ({"host": "a" * 64 + ".example.com", "port": 9229}, "neither a host name nor an IP"),
        (12, "expected a host:port string, not int"),
        ({"host": "h", "port": True}, "the port must be a number"),
    ],
)
def test_bad_values_are_refused_with_a_clear_warning(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(value)
    log, out = _log()
    event = {"_debugProxy": value}
    assert extract(event, ON, log) is None
    assert event == {}
    assert problem in out.getvalue()


def test_parse_accepts_ipv6_and_dicts() -> None:
    assert parse("relay.example.com.:9229") == DebugTarget("relay.example.com.", 9229)
    assert parse("[::1]:9229") == DebugTarget("::1", 9229)
    assert parse({"host": "127.0.0.1", "port": "9229"}) == DebugTarget("127.0.0.1", 9229)
    assert DebugTarget("h", 1).as_dict() == {"host": "h", "port": 1}


def test_allow_list_of_names_and_networks() -> None:
    allow = ("debug.example.com", "10.1.0.0/16", "::1")
    assert allowed("DEBUG.example.com", allow)
    assert allowed("10.1.2.3", allow)
    assert allowed("::1", allow)
    assert not allowed("10.2.0.1", allow)
    assert not allowed("evil.example.com", allow)
    assert allowed("anything", ())


def test_refused_host_is_logged_and_gives_no_target() -> None:
    log, out = _log()
    settings = DebugSettings(enabled=True, allow=("127.0.0.0/8",))
    assert extract({"_debugProxy": "203.0.113.9:9229"}, settings, log) is None
    assert "not in debug.allow" in out.getvalue()
    assert extract({"_debugProxy": "127.0.0.1:9229"}, settings, log) == DebugTarget(
        "127.0.0.1", 9229
    )


# --- the Node bridge, end to end ---------------------------------------------------------------

_LISTENING = re.compile(r"Debugger listening on ws://127\.0\.0\.1:(\d+)/")


def _inspector_ports(logs: str) -> list[int]:
    """The ports the adapter's inspector listened on, from Node's own announcement on stderr."""
    return [int(port) for port in _LISTENING.findall(logs)]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def _closes(port: int) -> bool:
    """True once nothing accepts connections on 127.0.0.1:``port`` (within 5 s: did not hang)."""
    give_up = time.monotonic() + 5
    while _accepts(port):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.05)
    return True


HANDLER = """
exports.handler = async (event) => ({ keys: Object.keys(event).sort() });
"""


def _recv_http(conn: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the connection closed before an HTTP answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk
        body += chunk
    return head.decode(), body


def _ws_text(text: str) -> bytes:
    """One masked WebSocket text frame, as a client must send it."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        header = struct.pack("!BB", 0x81, 0x80 | len(payload))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
    return header + mask + masked


def _debugger_session(listener: socket.socket) -> list[dict[str, Any]]:
    """Act as a debugger behind the relay: list the targets, attach, let the handler run."""
    first, _ = listener.accept()
    with first:
        first.settimeout(10)
        first.sendall(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, body = _recv_http(first)
    assert head.startswith("HTTP/1.")
    targets: list[dict[str, Any]] = json.loads(body)
    ws_url = targets[0]["webSocketDebuggerUrl"]
    assert ws_url.startswith("ws://")
    # The handler waits for the debugger: attach as DevTools does and let it run.
    second, _ = listener.accept()
    with second:
        second.settimeout(10)
        path = "/" + ws_url.split("/", 3)[3]
        key = base64.b64encode(os.urandom(16)).decode()
        second.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        upgrade = b""
        while b"\r\n\r\n" not in upgrade:
            upgrade += second.recv(4096)
        assert b" 101 " in upgrade.split(b"\r\n")[0]
        second.sendall(_ws_text('{"id":1,"method":"Runtime.runIfWaitingForDebugger"}'))
        time.sleep(0.2)  # keep the session open while the handler runs
    return targets


@needs_node
def test_node_connects_out_and_the_inspector_answers(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": HANDLER})
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    event = {"_debugProxy": f"127.0.0.1:{port}", "a": 1}
    log, _ = _log()
    target = extract(event, DebugSettings(enabled=True, allow=("127.0.0.1",)), log)
    assert target is not None
    with start("node", tmp_path, "index.handler") as adapter, listener:
        assert adapter.ready() == {"type": "ready", "seal": True}
        message = {"type": "invoke", "id": "dbg", "event": event, "context": context("dbg")}
        adapter.send({**message, "debug": target.as_dict()})
        targets = _debugger_session(listener)
        answer = adapter.recv(10)
        assert targets[0]["type"] == "node"
        assert answer == {"type": "result", "id": "dbg", "result": {"keys": ["a"]}}
        # The bridge is gone once the invocation has answered; the runtime keeps serving.
        assert adapter.invoke({"b": 2}, "next") == {
            "type": "result",
            "id": "next",
            "result": {"keys": ["b"]},
        }
        # ... and so is the inspector: nothing in the sandbox can attach to it any more.
        ports = _inspector_ports(adapter.logs())
        assert len(ports) == 1, adapter.logs()
        assert _closes(ports[0]), f"the inspector still listens on {ports[0]} after the session"


@needs_node
def test_debugging_through_sor_local_invoke(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    write_files(
        root,
        {
            "index.js": HANDLER,
            "sor.yml": sor_config("node", "index.handler")
            + "debug:\n  enabled: true\n  allow: [127.0.0.0/8]\n",
        },
    )
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)
    port = listener.getsockname()[1]
    outcome: dict[str, Any] = {}

    def debugger() -> None:
        try:
            outcome["targets"] = _debugger_session(listener)
        except Exception as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=debugger, daemon=True)
    thread.start()
    with listener:
        code, out, err = local_invoke(root, {"_debugProxy": f"127.0.0.1:{port}", "a": 1}, 20)
        thread.join(10)
    assert "error" not in outcome, outcome
    assert code == 0, (code, out, err)
    assert json.loads(out) == {"keys": ["a"]}  # the handler never saw _debugProxy
    assert outcome["targets"][0]["webSocketDebuggerUrl"]


@needs_node
def test_debugging_off_makes_no_connection(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": HANDLER})
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    event = {"_debugProxy": f"127.0.0.1:{port}", "a": 1}
    log, _ = _log()
    assert extract(event, DebugSettings(enabled=False), log) is None
    with start("node", tmp_path, "index.handler") as adapter, listener:
        assert adapter.ready() == {"type": "ready", "seal": True}
        assert adapter.invoke(event, "off")["result"] == {"keys": ["a"]}
        listener.settimeout(0.5)
        with pytest.raises(TimeoutError):
            listener.accept()


@needs_node
def test_unreachable_debugger_runs_the_handler_anyway(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": HANDLER})
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens there once it is closed
    with start("node", tmp_path, "index.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        for rid in ("unreach-1", "unreach-2"):  # the inspector closes, and opens again
            answer = adapter.invoke(
                {"a": 1}, rid, debug={"host": "127.0.0.1", "port": port}, timeout=10
            )
            assert answer == {"type": "result", "id": rid, "result": {"keys": ["a"]}}
        logs = adapter.logs()
        assert logs.count("unreachable") == 2, logs
        ports = _inspector_ports(logs)
        assert len(ports) == 2, logs
        for inspector_port in ports:
            assert _closes(inspector_port), f"the inspector still listens on {inspector_port}"


@needs_node
def test_silent_relay_delays_the_handler_only_until_half_the_time_left(tmp_path: Path) -> None:
    """A relay that accepts the bridge's connection but never carries a debugger."""
    write_files(tmp_path, {"index.js": HANDLER})
    held: list[socket.socket] = []
    relay = socket.create_server(("127.0.0.1", 0))
    port = relay.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                held.append(relay.accept()[0])  # held open, silent
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        with start("node", tmp_path, "index.handler") as adapter:
            assert adapter.ready() == {"type": "ready", "seal": True}
            ctx = context("silent", timeout=4.0)
            adapter.send(
                {
                    "type": "invoke",
                    "id": "silent",
                    "event": {"a": 1},
                    "context": ctx,
                    "debug": {"host": "127.0.0.1", "port": port},
                }
            )
            answer = adapter.recv(10)
            answered_ms = time.time() * 1000
            assert answer == {"type": "result", "id": "silent", "result": {"keys": ["a"]}}
            assert answered_ms < ctx["deadline_ms"], "the handler answered after its deadline"
            assert held, "the bridge never connected to the relay"
            logs = adapter.logs()
            assert "no debugger attached through" in logs, logs
            ports = _inspector_ports(logs)
            assert len(ports) == 1 and _closes(ports[0]), logs
    finally:
        relay.close()
        for conn in held:
            conn.close()
