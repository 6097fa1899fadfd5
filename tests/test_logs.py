"""sor's own log records (sor.logs) and the telemetry frames (sor.telemetry), over real pipes;
text lines stay one line whatever their fields hold."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from sor.logs import Log, escape, level_threshold
from sor.process import pipes
from sor.telemetry import Frame, FrameSink, decode, encode, frame_type, line_level


class PipeReader:
    """The read end of a real pipe, drained by a thread; ``frames()`` once the writers closed."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.data = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self.r, 65536):
            self.data += chunk
        os.close(self.r)

    def frames(self) -> list[Frame]:
        os.close(self.w)
        self._thread.join(10)
        frames, rest = decode(bytes(self.data))
        assert rest == b"", f"a torn frame: {rest[:40]!r}"
        return frames


@pytest.fixture
def telemetry() -> Iterator[PipeReader]:
    reader = PipeReader()
    yield reader
    if not reader._thread.is_alive():
        return
    os.close(reader.w)


def test_frame_types_are_the_runtime_clients() -> None:
    # The tables of awslambdaric 4.2.2 (lambda_runtime_log_utils) and the Node runtime.
    assert [frame_type(n, is_json=False) for n in range(7)] == [
        0xA55A0003,
        0xA55A0007,
        0xA55A000B,
        0xA55A000F,
        0xA55A0013,
        0xA55A0017,
        0xA55A001B,
    ]
    assert [frame_type(n, is_json=True) for n in (0, 2, 3, 4, 5, 6)] == [
        0xA55A0002,
        0xA55A000A,
        0xA55A000E,
        0xA55A0012,
        0xA55A0016,
        0xA55A001A,
    ]


def test_a_frame_byte_by_byte() -> None:
    payload = "2024-05-01T00:00:00.000Z\tabc\tINFO\thi\n"
    data = encode(payload, 3, is_json=False, micros=1714521600000000)
    assert data[:16] == bytes.fromhex("a55a000f 00000025 000617592aed8000")
    assert data[16:] == payload.encode()
    frames, rest = decode(data + data[:10])
    assert frames == [Frame(0xA55A000F, 1714521600000000, payload)] and rest == data[:10]
    assert (frames[0].level, frames[0].is_json) == (3, False)
    with pytest.raises(ValueError, match="not a telemetry frame"):
        decode(b"x" * 20)


@pytest.mark.parametrize(
    ("line", "json_format", "expected"),
    [
        ("[ERROR]\t2026-01-01T00:00:00.000Z\tr-1\tboom\rTraceback", False, (5, False)),
        ("[WARNING]\t2026-01-01T00:00:00.000Z\t\tw", False, (4, False)),
        ("[ERROR] ValueError: bad\rTraceback (most recent call last):", False, (5, False)),
        ("2026-01-01T00:00:00.000Z\tr-1\tWARN\tfrom node", False, (4, False)),
        ("[auth] a middleware's line", False, (0, False)),
        ("[Level 25]\tt\tr\ta custom level", False, (3, False)),
        ("[Level 5]\tt\tr\tbelow DEBUG", False, (0, False)),
        ("plain print output", False, (0, False)),
        ('{"timestamp": "t", "level": "DEBUG", "message": "m"}', True, (2, True)),
        ('{"timestamp":"t","level":"fatal","message":"m"}', True, (6, True)),
        ('{"no": "level"}', True, (0, True)),
        ('{"level": "ERROR"}', False, (0, False)),  # text format: JSON-looking text is text
        ("{not json", True, (0, False)),
    ],
)
def test_the_level_of_a_record_line(
    line: str, json_format: bool, expected: tuple[int, bool]
) -> None:
    assert line_level(line, json_format=json_format) == expected


def test_sor_lines_and_child_records_are_frames(telemetry: PipeReader) -> None:
    stream = io.StringIO()
    log = Log(stream, frames=FrameSink(telemetry.w))
    log.info("init", duration_ms=1.5)
    log.error("failed", "req-1")
    log.raw(
        "[ERROR]\t2026-01-01T00:00:00.000Z\treq-1\tboom\r"
        'Traceback (most recent call last):\r  File "h.py", line 1'
    )
    log.raw("printed")
    log.child_line("auth", "a middleware says")
    frames = telemetry.frames()
    assert stream.getvalue() == ""  # everything went to the descriptor
    assert [(f.type, f.text.split("\t")[-1]) for f in frames[:2]] == [
        (0xA55A000F, "init duration_ms=1.5\n"),
        (0xA55A0017, "failed\n"),
    ]
    assert frames[1].text.split("\t")[2] == "req-1"
    traceback = frames[2]
    assert traceback.type == 0xA55A0017
    assert traceback.text.splitlines() == [
        "[ERROR]\t2026-01-01T00:00:00.000Z\treq-1\tboom",
        "Traceback (most recent call last):",
        '  File "h.py", line 1',
    ]
    assert (frames[3].type, frames[3].text) == (0xA55A0003, "printed\n")
    assert (frames[4].type, frames[4].text) == (0xA55A0003, "[auth] a middleware says\n")
    assert len(frames) == 5


def test_json_lines_of_sor(telemetry: PipeReader) -> None:
    log = Log(io.StringIO(), json_format=True, frames=FrameSink(telemetry.w))
    log.warning("restarting", "req-2", errorType="X")
    log.info("init")
    log.raw('{"timestamp": "2026-01-01T00:00:00Z", "level": "DEBUG", "message": "m"}')
    frames = telemetry.frames()
    assert [f.type for f in frames] == [0xA55A0012, 0xA55A000E, 0xA55A000A]
    first = json.loads(frames[0].text)
    assert list(first) == ["timestamp", "level", "message", "requestId", "errorType"]
    assert first["level"] == "WARN" and first["requestId"] == "req-2"
    assert list(json.loads(frames[1].text)) == ["timestamp", "level", "message"]  # no id: none


def test_log_level_filters_sor_lines_only() -> None:
    stream = io.StringIO()
    log = Log(stream, threshold=level_threshold("error"))
    log.info("dropped")
    log.warning("dropped too")
    log.error("kept")
    log.raw("the function's output is never filtered here")
    log.child_line("mw", "nor a middleware's")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("[ERROR]\t") and lines[0].endswith("\tkept")
    assert [level_threshold(v) for v in ("", None, "bogus", "TRACE", "warning", "FATAL")] == [
        0,
        0,
        0,
        1,
        4,
        6,
    ]


def test_a_multi_line_message_of_sor_is_one_line_without_the_descriptor() -> None:
    stream = io.StringIO()
    Log(stream).error("first\nsecond")
    assert stream.getvalue().count("\n") == 1 and "first\\nsecond" in stream.getvalue()


def test_a_broken_descriptor_falls_back_to_the_stream() -> None:
    r, w = os.pipe()
    stream = io.StringIO()
    log = Log(stream, frames=FrameSink(w))
    log.info("framed")
    assert decode(os.read(r, 4096))[0][0].text.endswith("\tframed\n")
    os.close(r)  # nobody reads any more: the next write fails (EPIPE)
    log.info("after")
    log.info("and on")
    os.close(w)
    text = stream.getvalue()
    assert "sor: telemetry log:" in text and text.rstrip().endswith("\tand on")
    assert "\tafter" in text and not log.framed


def test_a_bad_variable_is_named_and_logging_goes_on() -> None:
    stream = io.StringIO()
    log = Log.from_env({"_LAMBDA_TELEMETRY_LOG_FD": "nope"}, stream, telemetry=True)
    log.info("still logged")
    assert "_LAMBDA_TELEMETRY_LOG_FD='nope' is not a descriptor" in stream.getvalue()
    assert "still logged" in stream.getvalue() and not log.framed
    r, w = os.pipe()
    os.close(w)
    closed = Log.from_env({"_LAMBDA_TELEMETRY_LOG_FD": str(w)}, stream, telemetry=True)
    assert not closed.framed and f"_LAMBDA_TELEMETRY_LOG_FD='{w}'" in stream.getvalue()
    os.close(r)
    # Only `sor run` owns the descriptor: other commands ignore the variable.
    assert not Log.from_env({"_LAMBDA_TELEMETRY_LOG_FD": "1"}, stream).framed


def test_the_descriptor_is_not_inherited(telemetry: PipeReader) -> None:
    code = (
        f"import os\ntry:\n    os.fstat({telemetry.w})\n    print('open')\n"
        "except OSError:\n    print('closed')\n"
    )

    def child_sees() -> str:
        return subprocess.run(
            [sys.executable, "-c", code], close_fds=False, capture_output=True, text=True
        ).stdout

    os.set_inheritable(telemetry.w, True)  # as Lambda hands it over
    assert child_sees() == "open\n"
    FrameSink(telemetry.w)
    assert child_sees() == "closed\n"
    assert telemetry.frames() == []


def test_a_long_record_is_one_frame(telemetry: PipeReader) -> None:
    # A record up to CloudWatch's largest event arrives whole through a LogPump.
    log = Log(io.StringIO(), frames=FrameSink(telemetry.w))
    r, w = pipes.make_pipe()
    pump = pipes.LogPump(r, log.raw)
    pump.start()
    record = "[ERROR]\tt\tr\t" + "\r".join(f"line {i} " + "x" * 100 for i in range(1000))
    os.write(w, (record + "\nnext\n").encode())
    os.close(w)
    pump.finish(5)
    frames = telemetry.frames()
    assert [len(f.text.splitlines()) for f in frames] == [1000, 1]
    assert frames[0].type == 0xA55A0017 and len(pump.tail[0]) == pipes.MAX_TAIL_LINE


def test_control_characters_in_text_fields_are_escaped() -> None:
    out = io.StringIO()
    log = Log(out)
    log.error("handler failed: Evil\r\n[INFO]\tforged", "id\n1", errorType="Bad\nType\x1b[2J")
    log.child_line("mw", "a line\rwith a return\x85and NEL\u2028too")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "\tid\\n1\thandler failed: Evil\\r\\n[INFO]\tforged errorType=Bad\\nType\\x1b[2J"
    )
    assert lines[1] == "[mw] a line\\rwith a return\\x85and NEL\\u2028too"


def test_tabs_and_printable_text_are_kept() -> None:
    assert (
        escape("REPORT RequestId: x\tDuration: 1 ms é €")
        == "REPORT RequestId: x\tDuration: 1 ms é €"
    )
    assert escape(5) == "5"


def test_json_lines_keep_the_text_as_it_was() -> None:
    out = io.StringIO()
    Log(out, json_format=True).error("a\nb", "r", errorType="T\r\n")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert (record["message"], record["errorType"]) == ("a\nb", "T\r\n")
