"""Lambda's log and X-Ray conventions: `sor run` with the Python adapter against awslambdaric.

Both run the same handlers against the suite's Runtime API server, with Lambda's telemetry
descriptor (`_LAMBDA_TELEMETRY_LOG_FD`) on a real pipe whose frames are read back and parsed;
what they post is recorded with its headers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.runtime_api_server import Answer, RuntimeApiServer

from sor.telemetry import Frame, decode

HANDLERS = textwrap.dedent(
    """
    import logging, os

    log = logging.getLogger("app")

    class Point:
        def __str__(self):
            return "Point(1, 2)"

    def records(event, context):
        logging.debug("dbg %d", 1)
        log.info("hi %s", "x", extra={"k": 1, "point": Point(), "nothing": None})
        logging.warning("line1\\nline2")
        log.warning({"a": 1, "b": [1, 2]})
        logging.log(25, "a custom level")
        logging.critical("crit é ☃")
        try:
            raise ValueError("bad")
        except ValueError:
            logging.exception("boom")
        print("plain print")
        return "done"

    def inner():
        raise KeyError("inner")

    def nested(event, context):
        try:
            inner()
        except KeyError as e:
            raise ValueError("outer") from e

    def unicode_error(event, context):
        try:
            inner()
        except KeyError as e:
            raise ValueError("outer é ☃") from e

    def huge(event, context):
        raise RuntimeError("x" * (1024 * 1024))

    def environment(event, context):
        inodes = []
        for name in os.listdir("/proc/self/fd"):
            try:
                inodes.append(os.fstat(int(name)).st_ino)
            except OSError:
                pass  # the listing's own descriptor, closed by now
        return {"variable": os.environ.get("_LAMBDA_TELEMETRY_LOG_FD"), "inodes": inodes}
    """
)


def line_of(code: str) -> int:
    """The line of HANDLERS that holds ``code``."""
    return next(i for i, line in enumerate(HANDLERS.splitlines(), 1) if code in line)


BAD_LINE = line_of('raise ValueError("bad")')
NESTED_LINE = line_of('raise ValueError("outer") from e')
UNICODE_LINE = line_of('raise ValueError("outer é ☃") from e')


SOR = [sys.executable, "-m", "sor", "run"]
RIC = [sys.executable, "-m", "awslambdaric"]
TENANT = {"Lambda-Runtime-Aws-Tenant-Id": "tenant-9"}


@dataclass
class Run:
    answers: list[Answer]
    frames: list[Frame]
    stdout: str
    pipe_inode: int  # of the telemetry pipe


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return tmp_path


def run(argv: list[str], root: Path, handler: str, *, telemetry: bool = True, **env: str) -> Run:
    """One bootstrap against a fresh server: its answer to one invocation, frames and stdout."""
    server = RuntimeApiServer()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_LAM"))}
    environ.update(
        AWS_LAMBDA_RUNTIME_API=server.address,
        _HANDLER=handler,
        LAMBDA_TASK_ROOT=str(root),
        SOR_LAYER_DIR=str(root / "no-layer"),
        **env,
    )
    r, w = os.pipe()
    inode = os.fstat(w).st_ino
    if telemetry:
        environ["_LAMBDA_TELEMETRY_LOG_FD"] = str(w)
    data = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 65536):
            data.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = root / "stdout.txt"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [*argv, handler] if argv == RIC else argv,
            cwd=root,
            env=environ,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            pass_fds=[w],
        )
    os.close(w)
    try:
        answers = [server.invoke({"n": 1}, request_id="req-1", headers=TENANT, wait=30)]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            server.close()
    reader.join(10)
    os.close(r)
    frames, rest = decode(bytes(data))
    assert rest == b""
    return Run(answers, frames, out.read_bytes().decode(), inode)  # \r kept


_SECONDS = re.compile(r'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')
_MILLIS = re.compile(r"\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t")


def handler_frames(frames: list[Frame]) -> list[tuple[int, str]]:
    """(type, text) of the handler's records, timestamps normalised, sor's own lines left out.

    Every timestamp must have the runtime client's exact form to be normalised.
    """
    kept = []
    for frame in frames:
        if frame.is_json and json.loads(frame.text).get("message") in ("init", "invocation"):
            continue  # sor's own JSON lines
        text = _MILLIS.sub("\t<ts>\t", _SECONDS.sub('"timestamp": "<ts>"', frame.text))
        if re.search(r"^\[INFO\]\t<ts>\t(req-1)?\t(init|invocation) ", text):
            continue  # sor's own text lines
        if text == "plain print\n":
            continue  # print() output: awslambdaric leaves it on stdout, sor frames it
        kept.append((frame.type, text.rstrip("\n")))
    return kept


@pytest.mark.parametrize("level", [None, "DEBUG", "ERROR", "trace"])
def test_json_records_as_awslambdaric_writes_them(root: Path, level: str | None) -> None:
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON"} | ({"AWS_LAMBDA_LOG_LEVEL": level} if level else {})
    ours = run(SOR, root, "handlers.records", **env)
    theirs = run(RIC, root, "handlers.records", **env)
    assert ours.answers[0].body == theirs.answers[0].body == b'"done"'
    expected = handler_frames(theirs.frames)
    assert handler_frames(ours.frames) == expected  # type (level bits) and text, byte by byte
    levels = [json.loads(text)["level"] for _, text in expected]
    if level == "DEBUG":
        assert levels == ["DEBUG", "INFO", "WARNING", "WARNING", "INFO", "CRITICAL", "ERROR"]
        info = json.loads(expected[1][1])
        keys = ["timestamp", "level", "message", "logger", "requestId", "tenantId", "k", "point"]
        assert list(info) == keys
        assert (info["requestId"], info["tenantId"], info["point"]) == (
            "req-1",
            "tenant-9",
            "Point(1, 2)",
        )
        boom = json.loads(expected[-1][1])
        exc_keys = ["stackTrace", "errorType", "errorMessage", "requestId", "location"]
        assert [k for k in boom if k in exc_keys] == exc_keys
    elif level == "ERROR":
        assert levels == ["CRITICAL", "ERROR"]
    else:  # unset, or a name awslambdaric does not know: the root logger's WARNING
        assert levels == ["WARNING", "WARNING", "CRITICAL", "ERROR"]
    # sor's own lines are frames too, filtered at the same level.
    own = [
        json.loads(f.text) for f in ours.frames if f.is_json and '"message": "invocation"' in f.text
    ]
    assert len(own) == (0 if level == "ERROR" else 1)
    if own:
        assert list(own[0])[:4] == ["timestamp", "level", "message", "requestId"]
        assert own[0]["requestId"] == "req-1" and own[0]["outcome"] == "success"
    if own:  # the runtime's records come before sor's line about the invocation
        last = max(i for i, f in enumerate(ours.frames) if '"message": "invocation"' in f.text)
        assert last == len(ours.frames) - 1
    # print() stays text, one frame per line, no level.
    assert [(f.type, f.text) for f in ours.frames if "plain print" in f.text] == [
        (0xA55A0003, "plain print\n")
    ]


def test_text_records_and_a_traceback_as_one_frame(root: Path) -> None:
    env = {"AWS_LAMBDA_LOG_LEVEL": "DEBUG"}
    ours = run(SOR, root, "handlers.records", **env)
    theirs = run(RIC, root, "handlers.records", **env)
    assert handler_frames(ours.frames) == handler_frames(theirs.frames)
    (traceback,) = [f for f in ours.frames if "\tboom" in f.text]
    assert traceback.type == 0xA55A0017  # ERROR, text
    assert traceback.text.splitlines()[1:] == [
        "Traceback (most recent call last):",
        f'  File "{root}/handlers.py", line {BAD_LINE}, in records',
        '    raise ValueError("bad")',
        "ValueError: bad",
    ]
    own = [f for f in ours.frames if "\tinvocation outcome=success" in f.text]
    assert len(own) == 1 and own[0].type == 0xA55A000F  # sor's own line: an INFO text frame


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AWS_LAMBDA_LOG_FORMAT": "json"},
        {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"},
    ],
)
def test_an_unhandled_error_is_one_frame_as_awslambdaric_logs_it(
    root: Path, env: dict[str, str]
) -> None:
    ours = handler_frames(run(SOR, root, "handlers.unicode_error", **env).frames)
    theirs = handler_frames(run(RIC, root, "handlers.unicode_error", **env).frames)
    assert ours[-1] == theirs[-1]  # type and text
    assert ours[-1][0] == (0xA55A0016 if env else 0xA55A0017)
    if not env:
        assert ours[-1][1].splitlines() == [
            "[ERROR] ValueError: outer é ☃",
            "Traceback (most recent call last):",
            f'\u00a0\u00a0File "{root}/handlers.py", line {UNICODE_LINE}, in unicode_error',
            '\u00a0\u00a0\u00a0\u00a0raise ValueError("outer é ☃") from e',
        ]
    else:
        assert ("é" in ours[-1][1]) == ("AWS_EXECUTION_ENV" in env)  # else escaped


def test_without_the_descriptor_a_record_is_one_line_of_stdout(root: Path) -> None:
    ours = run(SOR, root, "handlers.records", telemetry=False, AWS_LAMBDA_LOG_LEVEL="INFO")
    assert ours.frames == []
    lines = ours.stdout.split("\n")  # not splitlines(): it also splits at \r
    assert "plain print" in lines
    (boom,) = [line for line in lines if "\tboom" in line]
    assert boom.split("\r")[1:] == [
        "Traceback (most recent call last):",
        f'  File "{root}/handlers.py", line {BAD_LINE}, in records',
        '    raise ValueError("bad")',
        "ValueError: bad",
    ]
    assert [line for line in lines if "\tline1" in line] == [
        next(line for line in lines if line.endswith("\tline1\rline2"))
    ]


def test_the_adapter_gets_neither_the_variable_nor_the_descriptor(root: Path) -> None:
    ours = run(SOR, root, "handlers.environment")
    seen = ours.answers[0].json()
    assert seen["variable"] is None
    assert ours.pipe_inode not in seen["inodes"]
    # awslambdaric runs the handler in its own process, which holds the descriptor (so the
    # check above can see one); it removes the variable as well.
    ric = run(RIC, root, "handlers.environment")
    theirs = ric.answers[0].json()
    assert theirs["variable"] is None and ric.pipe_inode in theirs["inodes"]


def cause(answer: Answer) -> str | None:
    found = [
        v
        for k, v in answer.headers.items()
        if k.lower() == "lambda-runtime-function-xray-error-cause"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_xray_cause_of_a_nested_exception_is_awslambdarics(root: Path) -> None:
    (ours,) = run(SOR, root, "handlers.nested").answers
    (theirs,) = run(RIC, root, "handlers.nested").answers
    assert ours.kind == theirs.kind == "error"
    ours_cause, theirs_cause = cause(ours), cause(theirs)
    assert ours_cause is not None and theirs_cause is not None
    assert ours_cause == theirs_cause  # one path, so even the set's order cannot differ
    doc = json.loads(ours_cause)
    assert doc == {
        "working_directory": str(root),
        "exceptions": [
            {
                "message": "outer",
                "type": "ValueError",
                "stack": [{"label": "nested", "path": f"{root}/handlers.py", "line": NESTED_LINE}],
            }
        ],
        "paths": [f"{root}/handlers.py"],
    }
    assert ours.headers["Lambda-Runtime-Function-Error-Type"] == "ValueError"


def test_a_cause_over_one_mebibyte_is_left_out(root: Path) -> None:
    (ours,) = run(SOR, root, "handlers.huge", telemetry=False).answers
    (theirs,) = run(RIC, root, "handlers.huge", telemetry=False).answers
    assert ours.kind == theirs.kind == "error"
    assert cause(ours) is None and cause(theirs) is None
    assert ours.json()["errorMessage"] == "x" * (1024 * 1024)


NODE_HANDLER = """
exports.handler = async () => {
  console.log('hello %s', 'world');
  console.warn('multi\\nline');
  console.error(new Error('boom'));
  return 'ok';
};
"""


def test_node_records_are_frames_at_their_level(root: Path) -> None:
    (root / "index.js").write_text(NODE_HANDLER)
    (root / "sor.yml").write_text("version: 1\nruntime: {language: node, handler: index.handler}\n")
    ours = run(SOR, root, "index.handler")
    assert ours.answers[0].body == b'"ok"'
    records = {
        f.text.split("\t")[3].split("\n")[0]: f for f in ours.frames if "\treq-1\t" in f.text
    }
    assert records["hello world"].type == 0xA55A000F  # INFO, text: as aws-lambda-ric frames it
    assert records["multi"].type == 0xA55A0013 and records["multi"].text.endswith("multi\nline\n")
    boom = records["Error: boom"]
    assert boom.type == 0xA55A0017 and len(boom.text.splitlines()) > 2  # message and stack
    assert boom.text.splitlines()[1].lstrip().startswith("at ")
