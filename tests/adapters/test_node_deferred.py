"""The Node adapter's deferred load (SOR_LOAD=deferred, PROTOCOL.md), over its real protocol pipes.

Mirrors the Python adapter's tests (test_python_adapter.py): no user code before `load`, a quiet
exit at end of file before it, a protocol error for any other first message, init errors after
it; and sor's own LanguageRuntime driving a deferred Node process.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from support.runtime_matrix import Adapter, context, start, wait_gone, write_files

from sor.config.model import RuntimeSettings
from sor.logs import Log
from sor.runtime.language import LanguageRuntime

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# Appends a line to imported.log when loaded: proves whether user code ran. It logs as it loads
# (the console is the runtime's by then) and reads what the adapter left in its environment.
MARKED_CJS = """
const fs = require('fs');
const path = require('path');
fs.appendFileSync(path.join(__dirname, 'imported.log'), 'imported\\n');
console.log('loading');
exports.handler = async (event) => ({
  pid: process.pid,
  event,
  sorLoad: process.env.SOR_LOAD ?? null,
  global: typeof awslambda,
});
"""

MARKED_ESM = """
import fs from 'fs';
fs.appendFileSync(new URL('imported.log', import.meta.url), 'imported\\n');
export const handler = async (event) => ({ event, sorLoad: process.env.SOR_LOAD ?? null });
"""

DEFERRED = {"SOR_LOAD": "deferred"}


def _end_requests(adapter: Adapter) -> None:
    """Close the request pipe (end of file) and still read the answers."""
    fd, adapter._req_w = adapter._req_w, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    os.close(fd)


def _imports(root: Path) -> int:
    marker = root / "imported.log"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.mark.parametrize(
    ("files", "handler"),
    [({"app.js": MARKED_CJS}, "app.handler"), ({"app.mjs": MARKED_ESM}, "app.handler")],
    ids=["commonjs", "es-module"],
)
def test_deferred_load_runs_no_user_code_before_load(
    tmp_path: Path, files: dict[str, str], handler: str
) -> None:
    write_files(tmp_path, files)
    with start("node", tmp_path, handler, env=DEFERRED) as adapter:
        with pytest.raises(TimeoutError):
            adapter.recv(0.5)  # no `ready` before `load`
        assert _imports(tmp_path) == 0
        assert adapter.child.poll() is None  # it waits, alive
        adapter.send({"type": "load"})
        assert adapter.ready() == {"type": "ready", "seal": True}
        assert _imports(tmp_path) == 1
        answer = adapter.invoke({"a": 1}, "after-load")
        assert answer["type"] == "result", answer
        assert answer["result"]["event"] == {"a": 1}
        assert answer["result"]["sorLoad"] is None  # sor's own variable is not the handler's
        assert adapter.close() == 0
    assert _imports(tmp_path) == 1


def test_deferred_load_prepares_the_runtime_before_the_handler_loads(tmp_path: Path) -> None:
    # What the handler's module may use as it loads is in place after a deferred load too: the
    # runtime's console format and the global `awslambda`.
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "app.handler", env=DEFERRED) as adapter:
        adapter.send({"type": "load"})
        assert adapter.ready()["type"] == "ready"
        result = adapter.invoke({}, "r1")["result"]
        assert result["pid"] == adapter.child.pid
        assert result["global"] == "object"
        assert adapter.close() == 0
    record = adapter.stdout_path.read_text().splitlines()[0].split("\t")
    assert record[1:] == ["undefined", "INFO", "loading"], record  # as the runtime logs at init


def test_deferred_load_eof_before_load_exits_quietly(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    adapter = start("node", tmp_path, "app.handler", env=DEFERRED)
    time.sleep(0.3)  # it has started and waits on fd 3
    _end_requests(adapter)
    with pytest.raises(EOFError):
        adapter.recv(5)  # it said nothing on fd 4 either
    assert adapter.close() == 0
    assert adapter.logs() == ""
    assert _imports(tmp_path) == 0


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"type": "invoke", "id": "early", "event": {}, "context": context("early")}),
        '{"type":"ready"}',
        "not json",
        '["load"]',
    ],
)
def test_deferred_load_other_message_first_is_a_protocol_error(tmp_path: Path, line: str) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "app.handler", env=DEFERRED) as adapter:
        adapter.send_line(line)
        with pytest.raises(EOFError):
            adapter.recv(5)  # no answer, not even to an invoke with an id
        assert adapter.child.wait(5) == 2
        logs = adapter.logs()
        assert "sor: protocol error" in logs and '{"type":"load"}' in logs, logs
    assert _imports(tmp_path) == 0


def test_deferred_load_skips_empty_lines_before_load(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "app.handler", env=DEFERRED) as adapter:
        adapter.send_line("")
        adapter.send_line("  ")
        adapter.send({"type": "load"})
        assert adapter.ready()["type"] == "ready"
        assert adapter.invoke({"b": 2})["result"]["event"] == {"b": 2}


@pytest.mark.parametrize("env", [{}, DEFERRED], ids=["at-start", "deferred"])
def test_requests_written_at_once_are_served_after_ready(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # (`load`,) two invokes and the end of file in one write, before `ready`: nothing is lost or
    # answered before `ready` (the first invocation is read directly, the second waits for the
    # queue: channel.js), and the answers come in order before the adapter exits 0.
    write_files(tmp_path, {"app.mjs": MARKED_ESM})
    invokes = [
        json.dumps({"type": "invoke", "id": rid, "event": {"n": n}, "context": context(rid)})
        for n, rid in enumerate(["one", "two"])
    ]
    with start("node", tmp_path, "app.handler", env=env) as adapter:
        adapter.send_line("\n".join(['{"type":"load"}', *invokes] if env else invokes))
        _end_requests(adapter)
        assert adapter.recv()["type"] == "ready"
        assert [(a["id"], a["result"]["event"]) for a in (adapter.recv(), adapter.recv())] == [
            ("one", {"n": 0}),
            ("two", {"n": 1}),
        ]
        assert adapter.child.wait(5) == 0


@pytest.mark.parametrize("env", [{}, DEFERRED, {"AWS_LAMBDA_MAX_CONCURRENCY": "2"}])
def test_a_first_answer_bigger_than_the_pipe_waits_for_sor(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # The first answer is written directly (channel.js): while sor does not read, the adapter
    # waits, then the whole line arrives and the next invocations go through the queue.
    write_files(tmp_path, {"app.js": "exports.h = async (e) => 'x'.repeat(e.size);"})
    with start("node", tmp_path, "app.h", env=env) as adapter:
        if env.get("SOR_LOAD"):
            adapter.send({"type": "load"})
        assert adapter.ready()["type"] == "ready"
        size = 3 << 20
        message = {"type": "invoke", "id": "big", "event": {"size": size}, "context": context()}
        adapter.send(message)
        time.sleep(0.5)  # the pipe is full meanwhile
        answer = adapter.recv()
        assert (answer["id"], len(answer["result"])) == ("big", size)
        for rid in ("two", "three"):
            assert adapter.invoke({"size": 5}, rid) == {
                "type": "result",
                "id": rid,
                "result": "xxxxx",
            }
        assert adapter.close() == 0


def test_deferred_load_reports_init_errors_after_load(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "missing.handler", env=DEFERRED) as adapter:
        with pytest.raises(TimeoutError):
            adapter.recv(0.3)  # the missing module is not looked for before `load`
        adapter.send({"type": "load"})
        answer = adapter.ready()
        assert answer["type"] == "init_error"
        assert answer["error"]["errorType"] == "Runtime.ImportModuleError"
        assert adapter.child.wait(5) == 1


def test_deferred_load_checks_the_protocol_version_first(tmp_path: Path) -> None:
    # as the Python adapter: an adapter that does not speak sor's protocol says so at once
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "app.handler", env={**DEFERRED, "SOR_PROTOCOL": "2"}) as adapter:
        answer = adapter.ready()
        assert answer["type"] == "init_error"
        assert answer["error"]["errorType"] == "Runtime.UnsupportedProtocol"
        assert adapter.child.wait(5) == 1
    assert _imports(tmp_path) == 0


@pytest.mark.parametrize("env", [{}, DEFERRED], ids=["at-start", "deferred"])
def test_a_top_level_await_that_never_settles_ends_the_process(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # The request pipe (read from the start under a deferred load) does not keep the process
    # alive while the module loads: it ends, and sor sees it, instead of waiting for its deadline.
    write_files(tmp_path, {"app.mjs": "await new Promise(() => {});\nexport const h = () => 1;\n"})
    with start("node", tmp_path, "app.h", env=env) as adapter:
        if env:
            adapter.send({"type": "load"})
        with pytest.raises(EOFError):
            adapter.recv(10)
        assert wait_gone(adapter.child.pid)


def test_deferred_load_with_concurrency(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    env = {**DEFERRED, "AWS_LAMBDA_MAX_CONCURRENCY": "4"}
    with start("node", tmp_path, "app.handler", env=env) as adapter:
        adapter.send({"type": "load"})
        assert adapter.ready() == {"type": "ready", "seal": True, "concurrency": 4}
        assert adapter.invoke({"c": 1})["result"]["event"] == {"c": 1}


def test_without_sor_load_the_handler_loads_at_start(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.js": MARKED_CJS})
    with start("node", tmp_path, "app.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        assert _imports(tmp_path) == 1
        adapter.send({"type": "load"})  # only the first message of a deferred adapter
        assert adapter.child.wait(5) == 2
    assert "sor: protocol error" in adapter.logs()


# --- sor's LanguageRuntime with a deferred Node process ---------------------------------------


def _deferred_node(task_root: Path) -> LanguageRuntime:
    write_files(task_root, {"app.js": MARKED_CJS})
    return LanguageRuntime(
        RuntimeSettings(language="node", handler="app.handler"),
        task_root=task_root,
        env=dict(os.environ),
        log=Log(io.StringIO()),
        defer_load=True,
    )


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def test_language_runtime_loads_a_deferred_node_process(tmp_path: Path) -> None:
    rt = _deferred_node(tmp_path)
    try:
        rt.spawn()
        time.sleep(0.5)  # time enough to load a module it was not told to load
        assert rt.running
        assert _imports(tmp_path) == 0
        rt.load()
        assert rt.wait_ready(_deadline(10)) is True
        ctx = {"aws_request_id": "r1", "deadline_ms": int(time.time() * 1000) + 5000}
        body = rt.invoke({"x": 1}, ctx, _deadline(10)).value()
        assert body["event"] == {"x": 1} and body["sorLoad"] is None
        assert _imports(tmp_path) == 1
    finally:
        rt.stop()


def test_language_runtime_stops_a_deferred_node_process_before_load(tmp_path: Path) -> None:
    rt = _deferred_node(tmp_path)
    rt.spawn()
    time.sleep(0.3)
    assert rt.stop() is not None
    assert rt.last_stderr == []  # it left quietly
    assert _imports(tmp_path) == 0
