"""The example bash adapter (runtimes/exec/bash-runtime), driven over the real protocol pipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import CASES, context, local_invoke_case, run_case, start, write_files


@pytest.mark.parametrize("case", CASES)
def test_matrix(tmp_path: Path, case: str) -> None:
    run_case("exec", case, tmp_path)


ECHO = "#!/bin/sh\ncat\n"
LIB = """
greet() {
  event=$(cat)
  printf '{"event": %s,\\n "request": "%s", "deadline": "%s", "trace": "%s"}\\n' \\
    "$event" "$SOR_REQUEST_ID" "$SOR_DEADLINE_MS" "${_X_AMZN_TRACE_ID:-none}"
}
fails() { cat >/dev/null; return 4; }
"""


def one(root: Path, handler: str, event: Any, **kwargs: Any) -> dict[str, Any]:
    with start("exec", root, handler) as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        return adapter.invoke(event, **kwargs)


@pytest.mark.parametrize(
    "event",
    [
        {"s": 'quote " backslash \\ newline \n tab \t unicode é ☃', "n": [1, 2.5, None, True]},
        {"context": {"aws_request_id": "not the real one"}, "event": "nested keys"},
        "a string",
        42,
        None,
        [],
    ],
)
def test_events_reach_the_script_unchanged(tmp_path: Path, event: Any) -> None:
    write_files(tmp_path, {"echo.sh": ECHO}, executable=["echo.sh"])
    assert one(tmp_path, "echo.sh", event) == {"type": "result", "id": "req-1", "result": event}


def test_function_handler_in_a_sourced_file_with_context(tmp_path: Path) -> None:
    write_files(tmp_path, {"lib.sh": LIB})
    ctx = context("rid-9")
    answer = one(tmp_path, "lib.greet", {"k": "v"}, request_id="rid-9", ctx=ctx)
    assert answer == {
        "type": "result",
        "id": "rid-9",
        "result": {
            "event": {"k": "v"},
            "request": "rid-9",
            "deadline": str(ctx["deadline_ms"]),
            "trace": ctx["trace_id"],
        },
    }


def test_no_trace_id_means_no_trace_variable(tmp_path: Path) -> None:
    write_files(tmp_path, {"lib.sh": LIB})
    with start("exec", tmp_path, "lib.greet") as adapter:
        adapter.ready()
        adapter.invoke({}, "a")
        answer = adapter.invoke({}, "b", ctx={**context("b"), "trace_id": None})
    assert answer["result"]["trace"] == "none"


def test_default_json_separators_are_understood(tmp_path: Path) -> None:
    write_files(tmp_path, {"echo.sh": ECHO}, executable=["echo.sh"])
    message = {"type": "invoke", "id": "spaced", "event": {"a": [1, 2]}, "context": context()}
    message["debug"] = {"host": "127.0.0.1", "port": 9}
    with start("exec", tmp_path, "echo.sh") as adapter:
        adapter.ready()
        adapter.send_line(json.dumps(message))  # ", " and ": " separators
        answer = adapter.recv()
    assert answer == {"type": "result", "id": "spaced", "result": {"a": [1, 2]}}


def test_a_request_that_is_not_an_invoke_is_answered_at_once(tmp_path: Path) -> None:
    write_files(tmp_path, {"echo.sh": ECHO}, executable=["echo.sh"])
    with start("exec", tmp_path, "echo.sh") as adapter:
        adapter.ready()
        adapter.send_line("")  # not a message: nothing to answer
        adapter.send_line('{"type":"ping","id":"x"}')
        answer = adapter.recv(timeout=5)
        assert answer["type"] == "error" and answer["id"] == "x", answer
        assert answer["error"]["errorType"] == "Runtime.InvalidRequest"
        assert "not an invoke message" in answer["error"]["errorMessage"]
        assert adapter.invoke([1], "after")["result"] == [1]  # and it goes on serving


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        "[1, 2]",
        '{"type":"invoke","event":{},"context":{}}',  # no id
        '{"type":"load"}',
        '{"type":"invoke","id":42,"event":{},"context":{}}',  # not a plain string id
    ],
)
def test_a_request_without_an_id_stops_the_adapter_at_once(tmp_path: Path, line: str) -> None:
    write_files(tmp_path, {"echo.sh": ECHO}, executable=["echo.sh"])
    with start("exec", tmp_path, "echo.sh") as adapter:
        adapter.ready()
        adapter.send_line(line)
        assert adapter.child.wait(5) == 2  # sor sees the exit now, not at the deadline
    assert "protocol error: a request without a plain string id" in adapter.logs()


def test_handler_failures(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"lib.sh": LIB, "text.sh": "#!/bin/sh\necho hello world\n", "empty.sh": "#!/bin/sh\n"},
        executable=["text.sh", "empty.sh"],
    )
    failed = one(tmp_path, "lib.fails", {})
    assert failed["error"] == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "handler lib.fails exited with status 4",
        "stackTrace": [],
    }
    assert one(tmp_path, "text.sh", {})["error"]["errorType"] == "Runtime.InvalidResponse"
    assert one(tmp_path, "empty.sh", {})["result"] is None


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({}, "missing.sh", "Runtime.ImportModuleError", "cannot find missing.sh"),
        ({"plain.sh": ECHO}, "plain.sh", "Runtime.HandlerNotFound", "plain.sh is not executable"),
        ({"lib.sh": LIB}, "lib.nope", "Runtime.HandlerNotFound", "lib.nope is undefined"),
        ({"bad.sh": "return 3\n"}, "bad.fn", "Runtime.ImportModuleError", "sourcing bad.sh failed"),
        ({}, "../up.sh", "Runtime.MalformedHandlerName", "must stay inside the task root"),
        ({}, "/bin/cat", "Runtime.MalformedHandlerName", "must stay inside the task root"),
        ({}, "", "Runtime.MalformedHandlerName", "SOR_HANDLER is empty"),
    ],
)
def test_init_errors(
    tmp_path: Path, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    write_files(tmp_path, files)
    with start("exec", tmp_path, handler) as adapter:
        answer = adapter.ready()
        assert adapter.child.wait(5) == 1
    assert answer["type"] == "init_error"
    assert answer["error"]["errorType"] == error_type
    assert message in answer["error"]["errorMessage"]


def test_closing_the_request_pipe_ends_the_runtime(tmp_path: Path) -> None:
    write_files(tmp_path, {"echo.sh": ECHO}, executable=["echo.sh"])
    adapter = start("exec", tmp_path, "echo.sh")
    assert adapter.ready() == {"type": "ready", "seal": True}
    assert adapter.close() == 0


@pytest.mark.parametrize("case", CASES)
def test_matrix_through_sor_local_invoke(tmp_path: Path, case: str) -> None:
    local_invoke_case("exec", case, tmp_path / "fn")
