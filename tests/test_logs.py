"""sor's log lines (sor.logs): text lines stay one line whatever their fields hold."""

from __future__ import annotations

import io
import json

from sor.logs import Log, escape


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
