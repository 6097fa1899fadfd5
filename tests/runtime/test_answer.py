"""What an invocation answers, through a real Invoker, language runtime and Runtime API server:
events passed on as Lambda sent them, errors in their language's shape, malformed ERRORs made
well-formed, a deep event refused by name, a grace that would leave no time clamped."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import RuntimeApiServer

from sor.config.model import Config, Middleware, RuntimeSettings, Timeouts
from sor.logs import Log
from sor.middleware.pipeline import Pipeline
from sor.runtime import protocol
from sor.runtime.api import RuntimeApiClient
from sor.runtime.invocation import Invoker
from sor.runtime.language import LanguageRuntime

REPO = Path(__file__).resolve().parents[2]
BASH = str(REPO / "runtimes" / "exec" / "bash-runtime")
HANDLERS = """\
def echo(event, context):
    return event

def boom(event, context):
    raise ValueError("boom")
"""


class Harness:
    """An Invoker over a real language runtime, answering a real Runtime API server."""

    def __init__(self, root: Path, config: Config, **env: str) -> None:
        self.server = RuntimeApiServer()
        self.api = RuntimeApiClient(self.server.address)
        self.log = io.StringIO()
        full_env = {**os.environ, **env}
        self.runtime = LanguageRuntime(
            config.runtime, task_root=root, env=full_env, log=Log(io.StringIO())
        )
        pipeline = None
        if config.middlewares:
            pipeline = Pipeline(config.middlewares, log=Log(self.log), env=full_env)
            pipeline.start()
        self.pipeline = pipeline
        self.invoker = Invoker(
            config, self.runtime, self.api, log=Log(self.log), env=full_env, pipeline=pipeline
        )
        self.runtime.start(time.monotonic() + 10)

    def answer(self, event: bytes | Any, **options: Any) -> tuple[str, Any]:
        pending = self.server.submit(event, **options)
        outcome = self.invoker.handle(self.api.next())
        return outcome, self.server.wait_answer(pending)

    def close(self) -> None:
        self.runtime.stop()
        if self.pipeline is not None:
            self.pipeline.close()
        self.api.close()
        self.server.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    made: list[Harness] = []

    def make(config: Config, **env: str) -> Harness:
        made.append(Harness(tmp_path, config, **env))
        return made[-1]

    yield make
    for h in made:
        h.close()


def python(handler: str = "handlers.echo", **config: Any) -> Config:
    return Config(runtime=RuntimeSettings(handler=handler), **config)


def bash_echo(root: Path) -> Config:
    script = root / "echo.sh"
    script.write_text("#!/bin/sh\ncat\n")
    script.chmod(0o755)
    settings = RuntimeSettings(language="exec", handler="echo.sh", command=(BASH,))
    return Config(runtime=settings)


def test_an_event_reaches_the_runtime_as_the_bytes_lambda_sent(
    harness: Any, tmp_path: Path
) -> None:
    # A number past double range, a lone surrogate, odd spacing, a newline between tokens: the
    # bash adapter echoes the event's text, so the response is exactly what was sent.
    event = b'{"x": 1e400,\n  "s":"\\ud800", "n":-0.0}'
    h = harness(bash_echo(tmp_path))
    outcome, answer = h.answer(event)
    assert (outcome, answer.kind) == ("success", "response")
    assert answer.body == event.replace(b"\n", b" ")


def test_a_decoded_event_is_encoded_as_standard_json(harness: Any, tmp_path: Path) -> None:
    # With a middleware sor must read the event: what it passes on is JSON every parser reads.
    mw = tmp_path / "noop"
    mw.write_text("#!/bin/sh\ncat > /dev/null\n")
    mw.chmod(0o755)
    config = bash_echo(tmp_path)
    config = Config(runtime=config.runtime, middlewares=(Middleware(name="noop", path=mw),))
    h = harness(config)
    outcome, answer = h.answer(b'{"x": 1e400, "y": [NaN], "s": "\\ud800"}')
    assert (outcome, answer.kind) == ("success", "response")
    assert answer.json() == {"x": None, "y": [None], "s": "\ud800"}


@pytest.mark.parametrize("with_middleware", [False, True])
def test_an_event_nested_too_deeply_is_an_unmarshal_error(
    harness: Any, tmp_path: Path, with_middleware: bool
) -> None:
    middlewares: tuple[Middleware, ...] = ()
    if with_middleware:  # sor itself reads the event
        mw = tmp_path / "noop"
        mw.write_text("#!/bin/sh\ncat > /dev/null\n")
        mw.chmod(0o755)
        middlewares = (Middleware(name="noop", path=mw),)
    h = harness(python(middlewares=middlewares))
    deep = b"[" * 5000 + b"]" * 5000
    outcome, answer = h.answer(deep)
    assert (outcome, answer.kind) == ("Runtime.UnmarshalError", "error")
    assert answer.json()["errorMessage"].startswith("Unable to unmarshal input: ")
    outcome, _ = h.answer({"still": "serving"})
    assert outcome == "success"


def test_python_errors_keep_awslambdarics_shape(harness: Any) -> None:
    outcome, answer = harness(python("handlers.boom")).answer({})
    assert outcome == "ValueError"
    assert list(answer.json()) == ["errorMessage", "errorType", "requestId", "stackTrace"]


def test_node_handler_errors_take_the_node_runtimes_shape(harness: Any, tmp_path: Path) -> None:
    (tmp_path / "index.js").write_text(
        "exports.handler = async () => { throw new TypeError('no'); };\n"
    )
    config = Config(runtime=RuntimeSettings(language="node", handler="index.handler"))
    h = harness(config)
    outcome, answer = h.answer({})
    assert outcome == "TypeError"
    doc = answer.json()
    assert list(doc) == ["errorType", "errorMessage", "trace"]
    assert doc["errorMessage"] == "no" and doc["trace"][0].startswith("TypeError: no")


MALFORMED = """\
#!/bin/sh
# An exec adapter that answers every invoke with a malformed ERROR.
echo '{"type":"ready"}' >&4
while read -r line <&3; do
  id=$(printf '%s' "$line" | sed 's/^{"type":"invoke","id":"\\([^"]*\\)".*/\\1/')
  seal=$(printf '%s' "$line" | sed 's/.*"seal":"\\([0-9a-f]*\\)"}$/\\1/')
  bad='{"errorType":5,"errorMessage":"bad","stackTrace":"x"}'
  printf '{"type":"error","id":"%s","seal":"%s","error":%s}\\n' "$id" "$seal" "$bad" >&4
done
"""


def test_a_malformed_error_from_an_adapter_becomes_well_formed(
    harness: Any, tmp_path: Path
) -> None:
    adapter = tmp_path / "malformed"
    adapter.write_text(MALFORMED)
    adapter.chmod(0o755)
    h = harness(Config(runtime=RuntimeSettings(language="exec", command=(str(adapter),))))
    outcome, answer = h.answer({})
    assert outcome == "Runtime.MalformedError"
    doc = answer.json()
    assert doc["stackTrace"] == ["x"]
    assert doc["errorMessage"] == (
        "bad (the language runtime sent a malformed ERROR: its errorType is a int ('5'), not a "
        "name; its stackTrace is not a list of strings)"
    )


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        ("a string", "Runtime.MalformedError", "a string (the language runtime sent a malformed"),
        (None, "Runtime.MalformedError", "the language runtime sent a malformed ERROR: the error"),
        ({"errorType": "E", "errorMessage": 3}, "E", "3 (the language runtime sent a malformed"),
        ({"errorType": "E", "errorMessage": "m", "stackTrace": ["a"]}, "E", "m"),
    ],
)
def test_well_formed_errors(error: Any, kind: str, message: str) -> None:
    out = protocol.well_formed(error)
    assert out["errorType"] == kind
    assert out["errorMessage"].startswith(message)
    assert isinstance(out["stackTrace"], list)


def test_a_grace_that_leaves_no_time_is_clamped_and_said_once(harness: Any) -> None:
    # A 1 s function with a 2 s grace: every invocation used to be a Sor.Timeout.
    h = harness(python(timeouts=Timeouts(grace=2.0)), AWS_LAMBDA_FUNCTION_TIMEOUT="1")
    for _ in range(3):
        outcome, answer = h.answer({"fast": True}, timeout=1.0)
        assert (outcome, answer.kind) == ("success", "response")
    told = [line for line in h.log.getvalue().splitlines() if "timeouts.grace" in line]
    assert len(told) == 1, told
    assert "sor answers 0.25s before Lambda's deadline" in told[0]


def test_a_grace_clamped_at_the_first_invocation_when_lambda_does_not_say(harness: Any) -> None:
    h = harness(python(timeouts=Timeouts(grace=2.0)))
    outcome, _ = h.answer({}, timeout=1.0)
    assert outcome == "success"
    assert h.log.getvalue().count("timeouts.grace 2s would leave the handler") == 1
    assert sys.executable  # the Python adapter ran on this interpreter


def test_answers_are_posted_from_one_function_only() -> None:
    # The architecture's rule: an invocation's answer is posted by sor.runtime.answer.post
    # (its helpers) and nowhere else, so "exactly one answer" has one place to hold.
    import ast

    posting = []
    for path in sorted((REPO / "sor").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("respond", "respond_stream", "fail")
            ):
                posting.append(path.relative_to(REPO).as_posix())
    assert posting and set(posting) == {"sor/runtime/answer.py"}, posting
