"""Middleware hooks around a streamed answer, through a real `sor run` (docs/middlewares.md,
"Streamed answers"): `after` hooks change the metadata (never the body), `error` hooks after
the first byte replace the trailer's ERROR, an exec hook in bash and a persistent one in Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stream_api import HTTP_INTEGRATION, StreamedAnswer
from support.stream_run import CONFIG, SorRun

# Records each call (hook, SOR_STREAM, payload); after a stream, changes its metadata.
BASH_AFTER = """\
#!/bin/bash
payload=$(cat)
printf '%s stream=%s %s\\n' "$1" "${SOR_STREAM:-0}" "$payload" >> bash.calls
[ "$1" = after ] && [ "$SOR_STREAM" = 1 ] || exit 0
case "$payload" in
  *'"statusCode"'*) printf '%s' "$payload" | sed 's/"statusCode": *[0-9]*/"statusCode":202/' ;;
  *'"notAnObject"'*) echo '[1, 2]' ;;
  *) echo '{"contentType": "text/plain; charset=utf-8"}' ;;
esac
"""
# Persistent: records each call; replaces an error met after the first byte, or answers one.
PY_ERROR = """\
#!{python}
import json, sys
for line in sys.stdin:
    call = json.loads(line)
    with open("py.calls", "a") as f:
        f.write(json.dumps(call) + "\\n")
    error = call["payload"]
    if call["hook"] != "error":
        print("{{}}", flush=True)
    elif error.get("errorMessage") == "answer it":
        print(json.dumps({{"respond": {{"answered": True}}}}), flush=True)
    else:
        where = " mid-stream" if call.get("stream") else ""
        new = {{"errorType": "Replaced.Error", "errorMessage": "was " + error["errorType"] + where}}
        print(json.dumps({{"payload": new}}), flush=True)
"""
MIDDLEWARES = """\
middlewares:
  - name: outer
    path: ./py_error
    mode: persistent
    hooks: [error]
  - name: inner
    path: ./bash_after
    hooks: [after]
"""


@pytest.fixture
def sor(tmp_path: Path) -> Iterator[Any]:
    import sys

    for name, text in (
        ("bash_after", BASH_AFTER),
        ("py_error", PY_ERROR.format(python=sys.executable)),
    ):
        (tmp_path / name).write_text(text)
        os.chmod(tmp_path / name, 0o755)
    started: list[SorRun] = []

    def start(config: str = CONFIG + MIDDLEWARES) -> SorRun:
        started.append(SorRun(tmp_path, config))
        return started[-1]

    yield start
    for run in started:
        run.stop()


def _calls(root: Path, name: str) -> list[str]:
    path = root / name
    return path.read_text().splitlines() if path.exists() else []


def test_an_after_hook_changes_a_streams_content_type_not_its_body(
    sor: Any, tmp_path: Path
) -> None:
    s = sor()
    answer = s.invoke(
        [{"open": {"contentType": "text/event-stream"}}, {"chunk": "body"}, {"end": True}]
    )
    assert isinstance(answer, StreamedAnswer) and answer.problems == []
    assert answer.header("Content-Type") == "text/plain; charset=utf-8"
    assert answer.body == b"body" and answer.trailers == {}
    assert _calls(tmp_path, "bash.calls") == ['after stream=1 {"contentType":"text/event-stream"}']
    # A plain result still reaches the after hook as a result, unflagged.
    assert s.invoke().json() == {"plain": True}
    assert _calls(tmp_path, "bash.calls")[1] == 'after stream=0 {"plain":true}'


def test_an_after_hook_changes_the_http_prelude(sor: Any) -> None:
    prelude = {"statusCode": 200, "headers": {"x": "1"}}
    answer = sor().invoke([{"open": {"prelude": prelude}}, {"chunk": "<p>"}, {"end": True}])
    assert answer.header("Content-Type") == HTTP_INTEGRATION
    assert answer.prelude() == ({"statusCode": 202, "headers": {"x": "1"}}, b"<p>")


def test_metadata_that_is_not_an_object_is_a_middleware_error(sor: Any, tmp_path: Path) -> None:
    s = sor()
    answer = s.invoke([{"open": {"contentType": "notAnObject"}}, {"chunk": "x"}, {"end": True}])
    # Nothing was sent yet: an ordinary error, through the outer layer's error hook.
    assert not isinstance(answer, StreamedAnswer) and answer.kind == "error"
    assert answer.json()["errorType"] == "Replaced.Error"
    calls = [json.loads(line) for line in _calls(tmp_path, "py.calls")]
    assert calls[0]["payload"]["errorType"] == "Sor.MiddlewareError"
    assert "a stream's metadata must be an object, not list" in calls[0]["payload"]["errorMessage"]
    assert "stream" not in calls[0]
    assert s.invoke().json() == {"plain": True}  # the abandoned stream's runtime was restarted


def test_an_error_hook_replaces_the_trailer_error(sor: Any, tmp_path: Path) -> None:
    s = sor()
    failing = {"errorType": "Handler.Failed", "errorMessage": "mid"}
    answer = s.invoke([{"open": {}}, {"chunk": "a"}, {"error": failing}])
    assert isinstance(answer, StreamedAnswer) and answer.body == b"a"
    assert answer.error_type == "Replaced.Error"
    assert answer.error()["errorMessage"] == "was Handler.Failed mid-stream"
    call = json.loads(_calls(tmp_path, "py.calls")[0])
    assert call["hook"] == "error" and call["stream"] is True
    assert call["payload"]["errorType"] == "Handler.Failed"


def test_an_error_hook_cannot_answer_after_the_first_byte(sor: Any) -> None:
    s = sor()
    failing = {"errorType": "Handler.Failed", "errorMessage": "answer it"}
    answer = s.invoke([{"open": {}}, {"chunk": "a"}, {"error": failing}])
    assert answer.error_type == "Handler.Failed"  # kept: the stream has begun
    assert "answered after the stream's first byte" in s.stderr
    # Before the first byte the same hook answers, as for any error.
    early = s.invoke([{"open": {}}, {"error": failing}])
    assert early.kind == "response" and early.json() == {"answered": True}


def test_a_timeout_mid_stream_goes_through_the_error_hooks(sor: Any) -> None:
    s = sor()
    answer = s.invoke([{"open": {}}, {"chunk": "a"}, {"sleep": 30}], timeout=2.0)
    assert answer.error_type == "Replaced.Error"
    assert answer.error()["errorMessage"] == "was Sor.Timeout mid-stream"
    assert s.invoke().json() == {"plain": True}


def test_the_cloudevent_signature_refuses_a_stream(sor: Any) -> None:
    config = CONFIG.replace("  language: exec\n", "  language: exec\n  signature: cloudevent\n")
    s = sor(config)
    answer = s.invoke([{"open": {}}, {"chunk": "a"}, {"end": True}])
    assert answer.kind == "error" and answer.json()["errorType"] == "Sor.StreamNotSupported"
    assert s.invoke().json()["data"] == {"plain": True}
