"""Response streaming in the Node adapter (runtimes/node/streaming.js): awslambda.streamifyResponse
and HttpResponseStream.from, driven over the real protocol pipes of a real `node` process."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import Adapter, context, start, write_files

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

SEAL = "0123456789abcdef0123456789abcdef"
END = ("end", "error", "result")


def send_invoke(adapter: Adapter, request_id: str = "req-1", event: Any = None) -> None:
    adapter.send(
        {
            "type": "invoke",
            "id": request_id,
            "event": {} if event is None else event,
            "context": context(request_id),
            "seal": SEAL,
        }
    )


def collect(adapter: Adapter, request_id: str = "req-1", timeout: float = 15.0) -> list[Any]:
    """Every message answering ``request_id``, up to its end, error or result; chunks decoded."""
    messages: list[Any] = []
    while not messages or messages[-1]["type"] not in END:
        message = adapter.recv(timeout)
        assert message["id"] == request_id and message["seal"] == SEAL, message
        if message["type"] == "chunk":
            message["data"] = base64.b64decode(message["data"], validate=True)
        messages.append(message)
    return messages


def stream_of(adapter: Adapter, event: Any = None, request_id: str = "req-1") -> list[Any]:
    send_invoke(adapter, request_id, event)
    return collect(adapter, request_id)


def body(messages: list[Any]) -> bytes:
    return b"".join(m["data"] for m in messages if m["type"] == "chunk")


def kinds(messages: list[Any]) -> list[str]:
    """The message types, a run of chunks as one: how writes are cut into chunks is free."""
    out: list[str] = []
    for m in messages:
        if not (m["type"] == "chunk" and out and out[-1] == "chunk"):
            out.append(m["type"])
    return out


def adapter_for(tmp_path: Path, source: str, handler: str = "index.handler", **kw: Any) -> Adapter:
    write_files(tmp_path, {"index.js": source})
    adapter = start("node", tmp_path, handler, **kw)
    assert adapter.ready() == {"type": "ready", "seal": True}
    return adapter


def test_set_content_type_write_and_end(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain; charset=utf-8');
  responseStream.write('hello ');
  responseStream.write(Buffer.from('wörld '));
  responseStream.end(`from ${context.awsRequestId}`);
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        again = stream_of(adapter, request_id="req-2")  # the next invocation is served
    assert messages[0] == {
        "type": "stream",
        "id": "req-1",
        "seal": SEAL,
        "contentType": "text/plain; charset=utf-8",
    }
    assert kinds(messages) == ["stream", "chunk", "end"]
    assert body(messages) == "hello wörld from req-1".encode()
    assert body(again) == "hello wörld from req-2".encode()


def test_a_stream_without_content_type_is_octet_stream_and_may_be_empty(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  if (event.empty) stream.end(); else { stream.write({ an: 'object' }); stream.end(); }
});
"""
    with adapter_for(tmp_path, source) as adapter:
        empty = stream_of(adapter, {"empty": True})
        written = stream_of(adapter, {"empty": False}, "req-2")
    assert kinds(empty) == ["stream", "end"]
    assert empty[0]["contentType"] == "application/octet-stream"
    assert body(written) == b'{"an":"object"}'  # neither text nor bytes: its JSON, as on Lambda


def test_http_response_stream_sends_the_prelude_first(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { 'content-type': 'text/html', 'x-é': 'ü' },
    cookies: ['a=1', 'b=2'],
  });
  stream.write('<p>');
  stream.end('hi</p>');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
    assert messages[0] == {
        "type": "stream",
        "id": "req-1",
        "seal": SEAL,
        "prelude": {
            "statusCode": 201,
            "headers": {"content-type": "text/html", "x-é": "ü"},
            "cookies": ["a=1", "b=2"],
        },
    }
    assert kinds(messages) == ["stream", "chunk", "end"]
    assert body(messages) == b"<p>hi</p>"


def test_pipeline_from_a_readable(tmp_path: Path) -> None:
    source = """
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');
async function* lines() {
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setImmediate(r));
    yield `line ${i}\\n`;
  }
}
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  await pipeline(Readable.from(lines()), responseStream);
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
    assert kinds(messages)[0] == "stream" and kinds(messages)[-1] == "end"
    assert body(messages) == "".join(f"line {i}\n" for i in range(50)).encode()


def test_a_failing_readable_in_a_pipeline_fails_the_stream(tmp_path: Path) -> None:
    source = """
const { Readable, pipeline } = require('stream');
async function* parts() { yield 'part one;'; throw new RangeError('the source broke'); }
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  // not awaited, callback style: the stream's own error fails the invocation
  pipeline(Readable.from(parts()), responseStream, () => {});
  await new Promise((r) => setTimeout(r, 50));
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        assert kinds(stream_of(adapter, request_id="req-2"))[-1] == "error"  # still serving
    assert kinds(messages) == ["stream", "chunk", "error"]
    assert body(messages) == b"part one;"
    assert messages[-1]["error"]["errorType"] == "RangeError"
    assert messages[-1]["error"]["errorMessage"] == "the source broke"


def test_backpressure_a_big_write_arrives_whole_and_in_order(tmp_path: Path) -> None:
    # 3.5 MiB written at once, while sor (the test) does not read: write() says false, the event
    # loop keeps running (the interval ticks), 'drain' comes once the test has read the pipe.
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  const big = Buffer.alloc(3.5 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i / 4, i);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const returned = stream.write(big);
  const needDrain = stream.writableNeedDrain;
  await new Promise((resolve) => stream.once('drain', resolve));
  clearInterval(timer);
  stream.end(JSON.stringify({ returned, needDrain, ticks }));
});
"""
    with adapter_for(tmp_path, source) as adapter:
        send_invoke(adapter)
        time.sleep(1.0)  # the pipe is full meanwhile: only the event loop's timers run
        messages = collect(adapter)
    chunks = [m["data"] for m in messages if m["type"] == "chunk"]
    size = 7 * 512 * 1024
    data, report = body(messages)[:size], json.loads(body(messages)[size:])
    assert report["returned"] is False and report["needDrain"] is True
    assert report["ticks"] >= 3  # not blocked while the pipe was full
    assert len(chunks) >= 4 and all(len(chunk) <= 1 << 20 for chunk in chunks)  # 1 MiB at most
    expected = b"".join(i.to_bytes(4, "big") for i in range(len(data) // 4))
    assert data == expected


def test_binary_bytes_are_intact(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  stream.write(all);
  stream.write(new Uint8Array([0, 0xff, 0xfe, 0x80]));
  stream.write(Buffer.from([0xed, 0xa0, 0x80])); // not UTF-8: a surrogate's bytes
  stream.end();
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
    assert body(messages) == bytes(range(256)) + b"\x00\xff\xfe\x80" + b"\xed\xa0\x80"


def test_an_error_before_the_first_write_is_an_ordinary_error(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.setContentType('text/plain');
  throw new TypeError('nothing written yet');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        again = stream_of(adapter, request_id="req-2")
        logs = adapter.logs()
    assert kinds(messages) == ["error"]
    assert messages[0]["error"]["errorType"] == "TypeError"
    assert messages[0]["error"]["errorMessage"] == "nothing written yet"
    assert messages[0]["xray"]["exceptions"][0]["type"] == "TypeError"
    assert kinds(again) == ["error"]
    assert "Invoke Error" in logs and "nothing written yet" in logs


def test_an_error_after_the_first_write_ends_the_stream_with_it(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.write('partial ');
  stream.write('answer');
  await new Promise((r) => setTimeout(r, 10));
  throw new RangeError('mid-stream');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        again = stream_of(adapter, request_id="req-2")
    assert kinds(messages) == ["stream", "chunk", "error"]
    assert body(messages) == b"partial answer"  # everything written before the error goes out
    assert messages[-1]["error"]["errorType"] == "RangeError"
    assert messages[-1]["error"]["errorMessage"] == "mid-stream"
    assert kinds(again) == ["stream", "chunk", "error"]


def test_what_waits_for_a_full_pipe_goes_out_before_the_error(tmp_path: Path) -> None:
    # 3 MiB written while the test does not read, then a throw: the bytes still queued in the
    # stream leave first, in order, then the error (as the runtime's request sends its buffer
    # before the trailers)
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  for (let i = 0; i < 48; i++) stream.write(Buffer.alloc(65536, i));
  throw new RangeError('after queued writes');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        send_invoke(adapter)
        time.sleep(0.5)
        messages = collect(adapter)
        again = stream_of(adapter, request_id="req-2")
    assert kinds(messages) == ["stream", "chunk", "error"]
    assert body(messages) == b"".join(bytes([i]) * 65536 for i in range(48))
    assert messages[-1]["error"]["errorMessage"] == "after queued writes"
    assert body(again) == body(messages)


def test_an_error_after_end_is_only_logged(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.end('whole');
  stream.write('too late'); // as under Lambda: the answer stays whole, the error is logged
  throw new Error('after the end');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        again = stream_of(adapter, request_id="req-2")
        logs = adapter.logs()
    assert kinds(messages) == ["stream", "chunk", "end"]
    assert body(messages) == b"whole" and body(again) == b"whole"
    assert "after the end" in logs and "write after end" in logs


def test_the_first_chunk_arrives_before_the_handler_ends(tmp_path: Path) -> None:
    # The handler waits for a file the test writes only once it holds the first chunk: no
    # timing, the order itself is the proof.
    source = """
const fs = require('fs');
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.write('first');
  while (!fs.existsSync(event.go)) await new Promise((r) => setTimeout(r, 5));
  stream.end('second');
});
"""
    go = tmp_path / "go"
    with adapter_for(tmp_path, source) as adapter:
        send_invoke(adapter, event={"go": str(go)})
        head = adapter.recv()
        first = adapter.recv()
        go.write_text("")
        rest = collect(adapter)
    assert head["type"] == "stream"
    assert first["type"] == "chunk" and base64.b64decode(first["data"]) == b"first"
    assert kinds(rest) == ["chunk", "end"] and body(rest) == b"second"


def test_a_handler_that_returns_without_ending_fails_and_the_next_is_served(
    tmp_path: Path,
) -> None:
    source = """
const { Readable, pipeline } = require('stream');
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  if (event.kind === 'written') stream.write('x');
  if (event.kind === 'later') {
    // returns at once; the pipeline it started ends the stream afterwards: a whole answer
    pipeline(Readable.from(['a', 'b']), stream, () => {});
  }
  return event.kind === 'later' ? undefined : 'ignored';
});
"""
    with adapter_for(tmp_path, source) as adapter:
        nothing = stream_of(adapter, {"kind": "nothing"})
        written = stream_of(adapter, {"kind": "written"}, "req-2")
        later = stream_of(adapter, {"kind": "later"}, "req-3")
        logs = adapter.logs()
    not_finished = {
        "errorType": "string",
        "errorMessage": "Response stream is not finished.",
        "stackTrace": [],
    }
    assert kinds(nothing) == ["error"] and nothing[0]["error"] == not_finished
    assert kinds(written) == ["stream", "chunk", "error"] and written[-1]["error"] == not_finished
    assert kinds(later)[-1] == "end" and body(later) == b"ab"
    assert "Streaming handlers ignore return values." in logs


def test_a_non_async_streaming_handler_fails(tmp_path: Path) -> None:
    source = "exports.handler = awslambda.streamifyResponse((event, stream) => {});\n"
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
    assert kinds(messages) == ["error"]
    assert messages[0]["error"]["errorMessage"] == "Streaming does not support non-async handlers."


def test_set_content_type_after_a_write_is_refused(tmp_path: Path) -> None:
    source = """
exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.write('a');
  if (event.http) awslambda.HttpResponseStream.from(stream, { statusCode: 200 });
  else stream.setContentType('text/plain');
});
"""
    with adapter_for(tmp_path, source) as adapter:
        plain = stream_of(adapter, {"http": False})
        http = stream_of(adapter, {"http": True}, "req-2")
    for messages in (plain, http):
        assert kinds(messages) == ["stream", "chunk", "error"]
        assert messages[-1]["error"]["errorType"] == "Runtime.InvalidStreamingOperation"
        assert messages[-1]["error"]["errorMessage"] == "Cannot set content-type, too late."


@pytest.mark.parametrize(
    ("failure", "error_type", "status"),
    [
        ("setTimeout(() => { throw new SyntaxError('from a timer'); }, 10)", "SyntaxError", 129),
        (
            "Promise.reject(new Error('nobody catches this'))",
            "Runtime.UnhandledPromiseRejection",
            128,
        ),
    ],
)
def test_an_uncaught_failure_mid_stream_fails_it_and_ends_the_process(
    tmp_path: Path, failure: str, error_type: str, status: int
) -> None:
    source = f"""
exports.handler = awslambda.streamifyResponse(async (event, stream) => {{
  stream.write('before');
  await new Promise((r) => setTimeout(r, 10));
  {failure};
  await new Promise(() => {{}});
}});
"""
    with adapter_for(tmp_path, source) as adapter:
        messages = stream_of(adapter)
        assert adapter.child.wait(5) == status
    assert kinds(messages) == ["stream", "chunk", "error"]
    assert body(messages) == b"before"
    assert messages[-1]["error"]["errorType"] == error_type


def test_streaming_and_plain_handlers_in_one_module(tmp_path: Path) -> None:
    source = """
const loaded = () => Object.keys(require.cache).some((f) => f.endsWith('/streaming.js'));
exports.plain = async () => ({ loaded: loaded() });
exports.handler = awslambda.streamifyResponse(async (event, stream) => stream.end('streamed'));
"""
    write_files(tmp_path, {"index.js": source})
    with start("node", tmp_path, "index.plain") as adapter:
        adapter.ready()
        # a function that does not stream never loads the streaming code
        assert adapter.invoke({}) == {"type": "result", "id": "req-1", "result": {"loaded": False}}
    with start("node", tmp_path, "index.handler") as adapter:
        adapter.ready()
        assert body(stream_of(adapter)) == b"streamed"


def test_the_runtime_symbols_and_high_water_mark(tmp_path: Path) -> None:
    # what libraries do without the global: the runtime's own symbols mark the handler
    source = """
const handler = async (event, stream) => {
  stream.end(JSON.stringify({ hwm: stream.writableHighWaterMark, global: typeof awslambda }));
};
handler[Symbol.for('aws.lambda.runtime.handler.streaming')] = 'response';
handler[Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark')] = '4096';
exports.handler = handler;
"""
    env = {"AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA": "1"}
    with adapter_for(tmp_path, source, env=env) as adapter:
        messages = stream_of(adapter)
    assert json.loads(body(messages)) == {"hwm": 4096, "global": "undefined"}


def test_a_malformed_streaming_mark_is_an_init_error(tmp_path: Path) -> None:
    source = """
exports.handler = async () => {};
exports.handler[Symbol.for('aws.lambda.runtime.handler.streaming')] = 'request';
"""
    write_files(tmp_path, {"index.js": source})
    with start("node", tmp_path, "index.handler") as adapter:
        message = adapter.ready()
        assert adapter.child.wait(5) == 1
    assert message["type"] == "init_error"
    assert message["error"]["errorType"] == "Runtime.MalformedStreamingHandler"
    assert message["error"]["errorMessage"] == "Only response streaming is supported."


def test_the_server_sent_events_example(tmp_path: Path) -> None:
    # examples/streaming-node, as a function URL event reaches it: a page at /, events at /events
    example = Path(__file__).resolve().parents[2] / "examples" / "streaming-node"
    shutil.copy(example / "index.js", tmp_path)  # the adapter's logs are written in its root
    events = {"rawPath": "/events", "queryStringParameters": {"count": "2"}}
    with start("node", tmp_path, "index.handler") as adapter:
        assert adapter.ready()["type"] == "ready"
        page = stream_of(adapter, {"rawPath": "/"})
        send_invoke(adapter, "req-2", events)
        head, first = adapter.recv(), adapter.recv()
        rest = collect(adapter, "req-2")
    assert page[0]["prelude"] == {"statusCode": 200, "headers": {"content-type": "text/html"}}
    assert b"new EventSource" in body(page)
    assert head["prelude"]["headers"]["content-type"] == "text/event-stream"
    # the first event comes on its own, a second before the next one is written
    assert base64.b64decode(first["data"]).startswith(b'data: {"tick":0,')
    text = body(rest).decode()
    assert text.startswith('data: {"tick":1,') and text.endswith("event: done\ndata: bye\n\n")
    assert kinds(rest)[-1] == "end"
