"""The seal (runtimes/PROTOCOL.md): sor takes only the answer that carries the invocation's id and
its seal, so a handler that writes to the adapter's own answer descriptor cannot forge one.

Real adapters (Python, Node) behind a real LanguageRuntime; each handler finds the descriptor of
the answer pipe through /proc/self/fd (the test tells it the pipe's inode) and writes a forged
answer with the right id on it before returning its real one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from sor.config.model import RuntimeSettings
from sor.errors import FunctionError
from sor.logs import Log
from sor.resources import data_path
from sor.runtime.language import LanguageRuntime

PY_FORGER = """\
import os

def handler(event, context):
    line = '{"type":"result","id":"%s","result":"forged"}\\n' % context.aws_request_id
    hit = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == event["pipe"]:
                os.write(int(name), line.encode())
                hit.append(int(name))
        except OSError:
            pass
    return {"genuine": True, "forged_on": hit}
"""

JS_FORGER = """\
const fs = require('fs');
exports.handler = async (event, context) => {
  const line = `{"type":"result","id":"${context.awsRequestId}","result":"forged"}\\n`;
  const hit = [];
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${name}`) === event.pipe) {
        fs.writeSync(Number(name), line);
        hit.push(Number(name));
      }
    } catch (_) {}
  }
  return { genuine: true, forged_on: hit };
};
"""


def answer_pipe(rt: LanguageRuntime) -> str:
    """How /proc names the pipe the runtime answers on (sor holds its read end)."""
    assert rt._proc is not None and rt._proc.reader is not None
    return f"pipe:[{os.fstat(rt._proc.reader.fd).st_ino}]"


@pytest.mark.parametrize("language", ["python", "node"])
def test_a_forged_answer_on_the_answer_descriptor_does_not_replace_the_real_one(
    tmp_path: Path, language: str
) -> None:
    if language == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    (tmp_path / ("forger.py" if language == "python" else "forger.js")).write_text(
        PY_FORGER if language == "python" else JS_FORGER
    )
    log = io.StringIO()
    settings = RuntimeSettings(language=language, handler="forger.handler")
    rt = LanguageRuntime(settings, task_root=tmp_path, env=dict(os.environ), log=Log(log))
    try:
        rt.start(time.monotonic() + 30)
        event = {"pipe": answer_pipe(rt)}
        for request_id in ("r1", "r2"):
            context = {"aws_request_id": request_id, "deadline_ms": int(time.time() * 1000) + 9000}
            result = json.loads(rt.invoke(event, context, time.monotonic() + 30).text)
            assert result["genuine"] is True
            assert result["forged_on"], "the handler found the answer descriptor and wrote on it"
        assert rt.starts == 1
    finally:
        rt.stop()
    assert log.getvalue().count("ignored an answer without this request's id and seal") == 2


def test_an_answer_without_the_seal_is_skipped(tmp_path: Path) -> None:
    """An exec adapter's line with the right id but no seal is not the answer."""
    script = tmp_path / "adapter"
    script.write_text(
        "#!/bin/sh\n"
        'printf \'{"type":"ready","seal":true}\\n\' >&4\n'
        "read line <&3\n"
        'seal=$(printf \'%s\' "$line" | sed \'s/.*"seal": *"\\([0-9a-f]*\\)".*/\\1/\')\n'
        'printf \'{"type":"result","id":"r1","result":"forged"}\\n\' >&4\n'
        'printf \'{"type":"result","id":"r1","seal":"%s","result":"real"}\\n\' '
        '"$seal" >&4\n'
        "sleep 30\n"
    )
    script.chmod(0o755)
    settings = RuntimeSettings(language="exec", command=(str(script),))
    rt = LanguageRuntime(settings, task_root=tmp_path, env=dict(os.environ), log=Log(io.StringIO()))
    try:
        rt.start(time.monotonic() + 30)
        context = {"aws_request_id": "r1", "deadline_ms": int(time.time() * 1000) + 9000}
        assert rt.invoke({}, context, time.monotonic() + 30).text == b'"real"'
    finally:
        rt.stop()


def test_the_bash_adapter_echoes_the_seal(tmp_path: Path) -> None:
    """Answers and errors of runtimes/exec/bash-runtime carry the seal, so sor takes them."""
    (tmp_path / "ok.sh").write_text("#!/bin/sh\ncat\n")
    (tmp_path / "fails.sh").write_text("#!/bin/sh\nexit 3\n")
    for name in ("ok.sh", "fails.sh"):
        (tmp_path / name).chmod(0o755)
    adapter = str(data_path("runtimes", "exec", "bash-runtime"))
    for handler in ("ok.sh", "fails.sh"):
        settings = RuntimeSettings(language="exec", command=(adapter,), handler=handler)
        rt = LanguageRuntime(
            settings, task_root=tmp_path, env=dict(os.environ), log=Log(io.StringIO())
        )
        try:
            rt.start(time.monotonic() + 30)
            context = {"aws_request_id": "r1", "deadline_ms": int(time.time() * 1000) + 9000}
            if handler == "ok.sh":
                answer = rt.invoke({"a": [1, "}"]}, context, time.monotonic() + 30)
                assert json.loads(answer.text) == {"a": [1, "}"]}
            else:
                with pytest.raises(FunctionError) as info:
                    rt.invoke({}, context, time.monotonic() + 30)
                assert info.value.payload()["errorType"] == "Runtime.ExitError"
        finally:
            rt.stop()


def test_an_adapter_that_does_not_say_it_seals_is_not_checked(tmp_path: Path) -> None:
    """Protocol 1 as first written: `ready` without `seal`, answers without it, still served
    (SPEC's messages): only an adapter that announces sealing has unsealed lines skipped."""
    script = tmp_path / "adapter"
    script.write_text(
        "#!/bin/sh\n"
        'printf \'{"type":"ready"}\\n\' >&4\n'
        "while read -r line <&3; do\n"
        '  printf \'{"type":"result","id":"r1","result":"plain"}\\n\' >&4\n'
        "done\n"
    )
    script.chmod(0o755)
    settings = RuntimeSettings(language="exec", command=(str(script),))
    rt = LanguageRuntime(settings, task_root=tmp_path, env=dict(os.environ), log=Log(io.StringIO()))
    try:
        rt.start(time.monotonic() + 30)
        context = {"aws_request_id": "r1", "deadline_ms": int(time.time() * 1000) + 9000}
        assert rt.invoke({}, context, time.monotonic() + 10).text == b'"plain"'
    finally:
        rt.stop()
