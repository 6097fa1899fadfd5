"""Node response streaming on the wire: the same streaming handler under aws-lambda-ric 3.3.0
(AWS's own Node.js runtime client, tests/node) and under `sor run` posts the same bytes to the
Runtime API (the response mode, content type, chunked transfer encoding and trailer declaration;
the HTTP prelude and its 8 NUL bytes; the body; the error trailers), recorded by StreamApiServer.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import write_files
from support.stream_api import StreamApiServer, StreamedAnswer
from test_node_ric import RIC, Run, records, run_bootstrap, scrub


def _sor_streams() -> bool:
    from sor.runtime import answer

    return hasattr(answer, "Stream")


pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    # sor's own side of streaming is branch `stream`: until it is merged, sor refuses the
    # adapter's `stream` message (Sor.RuntimeExited) and there is nothing to compare
    pytest.mark.skipif(not _sor_streams(), reason="sor run does not stream yet (branch stream)"),
]


@pytest.fixture(scope="module", autouse=True)
def ric_installed() -> None:
    if not RIC.exists():  # not a skip: the comparison would compare nothing
        pytest.fail(f"aws-lambda-ric is not installed in {RIC.parents[2]}: make node-deps")


HANDLERS = r"""
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

exports.plain = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain; charset=utf-8');
  responseStream.write('hello ');
  responseStream.write(Buffer.from('wörld '));
  responseStream.write(new Uint8Array([0x21, 0x20]));
  responseStream.write({ an: 'object' });
  responseStream.end(' bye');
});

exports.sse = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200,
    headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'x-é': 'ü' },
    cookies: ['session=1; HttpOnly'],
  });
  for (let i = 1; i <= 3; i++) {
    stream.write(`id: ${i}\nevent: tick\ndata: ${JSON.stringify({ n: i })}\n\n`);
    await pause(20);
  }
  stream.end();
});

async function* parts() {
  for (let i = 0; i < 20; i++) {
    await pause(1);
    yield `part ${i};`;
  }
}
exports.piped = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('application/x-ndjson');
  await pipeline(Readable.from(parts()), responseStream);
});

exports.binary = awslambda.streamifyResponse(async (event, responseStream) => {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  responseStream.write(all);
  const big = Buffer.alloc(3 * 1024 * 1024 + 5);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  responseStream.write(big);
  responseStream.end();
});

exports.empty = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.end();
});

class OrderError extends Error { constructor(m) { super(m); this.name = 'OrderError'; } }
exports.late = awslambda.streamifyResponse(async (event, responseStream) => {
  const prelude = { statusCode: 500 };
  if (event.http) responseStream = awslambda.HttpResponseStream.from(responseStream, prelude);
  responseStream.write('partial');
  await pause(10);
  throw new OrderError('failed after the first byte');
});

exports.returns = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.end('done');
  if (event.value) return { ignored: true }; // logged as ignored
});

exports.early = awslambda.streamifyResponse(async (event, responseStream) => {
  throw new OrderError('failed before the first byte');
});
"""

_MATTERS = ("Lambda-Runtime-Function-Response-Mode", "Content-Type", "Transfer-Encoding")


def streamed(kind: str, root: Path, handler: str, *events: Any) -> tuple[StreamedAnswer, Run]:
    """The first answer to ``events`` (one by default), which must be streamed, and the run.
    A second event makes sure what the first invocation logged after its answer is logged."""
    run = run_bootstrap(kind, root, handler, list(events or [{}]), server_class=StreamApiServer)
    answer = run.answers[0]
    assert isinstance(answer, StreamedAnswer), (
        f"{kind}: not streamed: {answer.kind} {answer.body!r}"
    )
    assert answer.problems == [], answer.problems
    return answer, run


def on_the_wire(answer: StreamedAnswer, run: Run, root: Path) -> dict[str, Any]:
    """What must be the same: the headers that matter, the trailer names, the body, the ERROR,
    and what the runtime logged (the `Invoke Error` record, the warning)."""
    error = answer.error()
    return {
        "logged": records(run, root),
        "kind": answer.kind,
        "headers": {name: answer.header(name) for name in _MATTERS},
        "trailer": [name.strip() for name in (answer.header("Trailer") or "").split(",")],
        "body": answer.body,
        "error type": answer.error_type,
        "error": None if error is None else scrub(error, root),
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("stream") / "fn", {"index.js": HANDLERS})


@pytest.mark.parametrize(
    ("handler", "events"),
    [
        ("index.plain", [{}]),
        ("index.sse", [{}]),
        ("index.piped", [{}]),
        ("index.binary", [{}]),
        ("index.empty", [{}]),
        ("index.late", [{"http": False}]),
        ("index.late", [{"http": True}]),
        ("index.returns", [{"value": True}, {}]),  # its warning is logged after its answer
    ],
)
def test_the_same_stream_on_the_wire_as_aws_lambda_ric(
    root: Path, handler: str, events: list[Any]
) -> None:
    ric = on_the_wire(*streamed("ric", root, handler, *events), root)
    sor = on_the_wire(*streamed("sor", root, handler, *events), root)
    assert sor == ric
    # what is compared is what it should be (no comparison of two empty recordings)
    assert ric["headers"]["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert ric["headers"]["Transfer-Encoding"] == "chunked"
    assert ric["trailer"] == [
        "Lambda-Runtime-Function-Error-Type",
        "Lambda-Runtime-Function-Error-Body",
    ]


def test_the_prelude_on_the_wire(root: Path) -> None:
    answer, _ = streamed("sor", root, "index.sse")
    assert answer.header("Content-Type") == "application/vnd.awslambda.http-integration-response"
    prelude, rest = answer.prelude()
    assert prelude == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-é": "ü"},
        "cookies": ["session=1; HttpOnly"],
    }
    assert rest == b"".join(
        f'id: {i}\nevent: tick\ndata: {{"n":{i}}}\n\n'.encode() for i in (1, 2, 3)
    )
    # each event was posted as it was written, not gathered at the end
    assert len(answer.chunks) >= 3


def test_an_error_before_the_first_byte_is_an_ordinary_error_answer(root: Path) -> None:
    # Deliberately not the same transport: aws-lambda-ric opens the stream before the handler
    # runs, so it posts an empty stream with the error trailers; sor's protocol has the adapter
    # open it at the first write, so the same ERROR comes as an ordinary error answer.
    ric, ric_run = streamed("ric", root, "index.early")
    sor_run = run_bootstrap("sor", root, "index.early", [{}], server_class=StreamApiServer)
    (sor,) = sor_run.answers
    assert ric.body == b"" and ric.error_type == "OrderError"
    assert sor.kind == "error" and not isinstance(sor, StreamedAnswer)
    assert sor.headers.get("Lambda-Runtime-Function-Error-Type") == "OrderError"
    assert scrub(sor.json(), root) == scrub(ric.error(), root)
    assert base64.b64decode(ric.trailer("Lambda-Runtime-Function-Error-Body") or "")
    assert records(sor_run, root) == records(ric_run, root) != []  # the same Invoke Error
