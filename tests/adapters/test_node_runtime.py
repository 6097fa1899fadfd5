"""The Node.js adapter (runtimes/node/sor_runtime.js), driven over the real protocol pipes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime_matrix import (
    CASES,
    context,
    local_invoke_case,
    run_case,
    start,
    write_files,
)

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_one(root: Path, handler: str, event: Any = None, **kwargs: Any) -> dict[str, Any]:
    with start("node", root, handler, **kwargs) as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        return adapter.invoke({} if event is None else event)


def init_error(root: Path, handler: str) -> dict[str, Any]:
    with start("node", root, handler) as adapter:
        message = adapter.ready()
        assert message["type"] == "init_error", message
        assert adapter.child.wait(5) is not None  # an adapter that cannot load its handler ends
        error: dict[str, Any] = message["error"]
        return error


@pytest.mark.parametrize("case", CASES)
def test_matrix(tmp_path: Path, case: str) -> None:
    run_case("node", case, tmp_path)


# --- module kinds and handler names ------------------------------------------------------------


def test_commonjs_async_handler_gets_event_and_context(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "index.js": """
exports.handler = async (event, context) => ({
  event,
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity === undefined ? 'undefined' : context.identity,
  clientContext: context.clientContext === undefined ? 'undefined' : context.clientContext,
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  trace: process.env._X_AMZN_TRACE_ID,
  fds: [process.env.SOR_IN_FD, process.env.SOR_OUT_FD],
});
"""
        },
    )
    ctx = context("abc-123", timeout=30)
    with start("node", tmp_path, "index.handler") as adapter:
        assert adapter.ready() == {"type": "ready", "seal": True}
        answer = adapter.invoke({"n": 1, "s": "é"}, "abc-123", ctx=ctx)
        # a later invocation without a trace id must not see the previous one's
        second = adapter.invoke({}, "two", ctx={**context("two"), "trace_id": None})
    assert answer["type"] == "result" and answer["id"] == "abc-123"
    result = answer["result"]
    assert result["event"] == {"n": 1, "s": "é"}
    assert result["awsRequestId"] == "abc-123"
    assert result["functionName"] == "fn"
    assert result["functionVersion"] == "$LATEST"
    assert result["invokedFunctionArn"] == ctx["invoked_function_arn"]
    assert result["memoryLimitInMB"] == "128"  # a string, as in Node's Lambda runtime
    assert result["logGroupName"] == "/aws/lambda/fn"
    assert result["logStreamName"] == ctx["log_stream_name"]
    assert result["identity"] == "undefined"
    assert result["clientContext"] == "undefined"
    assert 0 < result["remaining"] <= 30_000
    assert result["waits"] is True
    assert result["trace"] == ctx["trace_id"]
    assert result["fds"] == [None, None]
    assert "trace" not in second["result"]


def test_client_context_and_identity_are_objects(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"index.js": "exports.h = async (e, c) => [c.clientContext.custom, c.identity];"},
    )
    ctx = context(
        client_context=json.dumps({"custom": {"k": "v"}}),
        identity={"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"},
    )
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        answer = adapter.invoke({}, ctx=ctx)
    assert answer["result"] == [
        {"k": "v"},
        {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"},
    ]


@pytest.mark.parametrize(
    ("files", "handler"),
    [
        ({"app.mjs": "export const handler = async (e) => ['mjs', e.x];"}, "app.handler"),
        (
            {
                "package.json": '{"type": "module"}',
                "app.js": "export async function handler(e) { return ['esm-js', e.x]; }",
            },
            "app.handler",
        ),
        ({"app.cjs": "module.exports.handler = async (e) => ['cjs', e.x];"}, "app.handler"),
        ({"src/lib/app.js": "exports.handler = async (e) => ['dir', e.x];"}, "src/lib/app.handler"),
        ({"app.js": "exports.a = { b: async (e) => ['nested', e.x] };"}, "app.a.b"),
        (
            {
                "top.mjs": (
                    "const v = await Promise.resolve('tla');\n"
                    "export const handler = async (e) => [v, e.x];"
                )
            },
            "top.handler",
        ),
    ],
)
def test_module_kinds(tmp_path: Path, files: dict[str, str], handler: str) -> None:
    write_files(tmp_path, files)
    answer = run_one(tmp_path, handler, {"x": 7})
    assert answer["type"] == "result", answer
    assert answer["result"][1] == 7
    assert answer["result"][0] in {"mjs", "esm-js", "cjs", "dir", "nested", "tla"}


def test_package_from_node_modules(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"node_modules/mypkg/index.js": "exports.handler = async () => 'from node_modules';"},
    )
    assert run_one(tmp_path, "mypkg.handler")["result"] == "from node_modules"


# --- callback and context styles ---------------------------------------------------------------

STYLES = """
exports.callback = (event, context, callback) => { setTimeout(() => callback(null, 'cb'), 5); };
exports.callbackError = (event, context, callback) => callback(new RangeError('cb failed'));
exports.callbackString = (event, context, callback) => callback('plain failure');
exports.succeed = (event, context) => { setTimeout(() => context.succeed('succeeded'), 5); };
exports.done = (event, context) => context.done(null, { done: true });
exports.fail = (event, context) => context.fail(new Error('failed via context'));
exports.nothing = (event) => { setTimeout(() => {}, 20); };
exports.syncValue = (event) => 'ignored, as on Lambda';
exports.twice = async (event, context, callback) => { callback(null, 'first'); return 'second'; };
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("callback", "cb"),
        ("succeed", "succeeded"),
        ("done", {"done": True}),
        ("nothing", None),
        ("syncValue", None),
        ("twice", "first"),
    ],
)
def test_callback_and_context_results(tmp_path: Path, name: str, expected: Any) -> None:
    write_files(tmp_path, {"styles.js": STYLES})
    answer = run_one(tmp_path, f"styles.{name}")
    assert answer == {"type": "result", "id": "req-1", "result": expected}


@pytest.mark.parametrize(
    ("name", "error_type", "message"),
    [
        ("callbackError", "RangeError", "cb failed"),
        ("callbackString", "string", "plain failure"),
        ("fail", "Error", "failed via context"),
    ],
)
def test_callback_and_context_errors(
    tmp_path: Path, name: str, error_type: str, message: str
) -> None:
    write_files(tmp_path, {"styles.js": STYLES})
    answer = run_one(tmp_path, f"styles.{name}")
    assert answer["type"] == "error"
    assert answer["error"]["errorType"] == error_type
    assert answer["error"]["errorMessage"] == message


# --- errors ------------------------------------------------------------------------------------


def test_thrown_error_is_formatted_as_lambda_formats_it(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "index.js": """
class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError'; } }
exports.handler = async () => { throw new ValidationError('bad input'); };
exports.str = async () => { throw 'just a string'; };
"""
        },
    )
    error = run_one(tmp_path, "index.handler")["error"]
    assert error["errorType"] == "ValidationError"
    assert error["errorMessage"] == "bad input"
    assert error["stackTrace"][0] == "ValidationError: bad input"
    assert any("index.js" in line for line in error["stackTrace"][1:])
    assert run_one(tmp_path, "index.str")["error"] == {
        "errorType": "string",
        "errorMessage": "just a string",
        "stackTrace": [],
    }


def test_import_errors_keep_lambda_names(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "syntax.js": "exports.handler = async () => {",
            "needs.js": "require('not-installed-anywhere'); exports.handler = async () => 1;",
            "ok.js": "exports.value = 42;",
            "boom.js": "throw new Error('init failed');",
            "needs_esm.mjs": "import x from 'not-installed-anywhere'; export const handler = x;",
            "syntax_esm.mjs": "export const handler = async () => {",
        },
    )
    missing = init_error(tmp_path, "nofile.handler")
    assert missing["errorType"] == "Runtime.ImportModuleError"
    assert "Cannot find module 'nofile'" in missing["errorMessage"]
    dependency = init_error(tmp_path, "needs.handler")
    assert dependency["errorType"] == "Runtime.ImportModuleError"
    assert "not-installed-anywhere" in dependency["errorMessage"]
    syntax = init_error(tmp_path, "syntax.handler")
    assert syntax["errorType"] == "Runtime.UserCodeSyntaxError"
    assert syntax["errorMessage"].startswith("SyntaxError:")
    not_found = init_error(tmp_path, "ok.handler")
    assert not_found == {
        "errorType": "Runtime.HandlerNotFound",
        "errorMessage": "ok.handler is undefined or not exported",
        "stackTrace": not_found["stackTrace"],
    }
    assert init_error(tmp_path, "ok.value")["errorMessage"] == "ok.value is not a function"
    esm_missing = init_error(tmp_path, "needs_esm.handler")
    # import() fails with ERR_MODULE_NOT_FOUND, which Node's runtime does not wrap
    assert esm_missing["errorType"] == "Error"
    assert "not-installed-anywhere" in esm_missing["errorMessage"]
    esm_syntax = init_error(tmp_path, "syntax_esm.handler")
    assert esm_syntax["errorType"] == "Runtime.UserCodeSyntaxError"
    thrown = init_error(tmp_path, "boom.handler")
    assert (thrown["errorType"], thrown["errorMessage"]) == ("Error", "init failed")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("nodot", "Bad handler"),
        (
            "../escape.handler",
            "'../escape.handler' is not a valid handler name. Use absolute paths when specifying "
            "root directories in handler names.",
        ),
        ("", "no handler: SOR_HANDLER is empty"),
    ],
)
def test_malformed_handler_names(tmp_path: Path, handler: str, message: str) -> None:
    error = init_error(tmp_path, handler)
    assert (error["errorType"], error["errorMessage"]) == ("Runtime.MalformedHandlerName", message)


def test_uncaught_exception_fails_the_invocation_and_ends_the_runtime(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "index.js": """
exports.throws = (event, context, cb) => {
  setTimeout(() => { throw new Error('async boom'); }, 5);
};
exports.rejects = async () => {
  Promise.reject(new Error('nobody catches me'));
  await new Promise((r) => setTimeout(r, 1000));
};
"""
        },
    )
    with start("node", tmp_path, "index.throws") as adapter:
        adapter.ready()
        answer = adapter.invoke({})
        assert answer["error"]["errorMessage"] == "async boom"
        assert adapter.child.wait(5) == 129
    with start("node", tmp_path, "index.rejects") as adapter:
        adapter.ready()
        error = adapter.invoke({})["error"]
        assert error["errorType"] == "Runtime.UnhandledPromiseRejection"
        assert "nobody catches me" in error["errorMessage"]


def test_unserialisable_result_is_an_error(tmp_path: Path) -> None:
    write_files(
        tmp_path, {"index.js": "exports.h = async () => { const a = {}; a.a = a; return a; };"}
    )
    error = run_one(tmp_path, "index.h")["error"]
    # Node's runtime's own words (JSON.stringify's TypeError is not passed on)
    assert (error["errorType"], error["errorMessage"]) == (
        "Error",
        "Unable to stringify response body",
    )


def test_unsupported_protocol_version(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": "exports.h = async () => 1;"})
    with start("node", tmp_path, "index.h", env={"SOR_PROTOCOL": "2"}) as adapter:
        message = adapter.ready()
    assert message["type"] == "init_error"
    assert "protocol 1" in message["error"]["errorMessage"]


# --- logs, payloads, lifecycle -----------------------------------------------------------------

FORGER = """
const { execFileSync } = require('child_process');
exports.handler = async (event, context) => {
  const forged = JSON.stringify({ type: 'result', id: context.awsRequestId, result: 'forged' });
  console.log(forged);
  console.error(forged);
  process.stdout.write(forged + '\\n');
  let child = 'no error';
  try {
    execFileSync('sh', ['-c', 'echo ' + JSON.stringify(forged) + ' >&4'], { stdio: 'pipe' });
  } catch (err) {
    child = 'refused';
  }
  let direct = 'no error';
  try {
    require('fs').writeSync(4, forged + '\\n');  // the protocol no longer lives on fd 4
  } catch (err) {
    direct = err.code;
  }
  return { genuine: true, child, direct };
};
"""


def test_printing_cannot_forge_a_result(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": FORGER})
    with start("node", tmp_path, "index.handler") as adapter:
        adapter.ready()
        answer = adapter.invoke({}, "r-forge")
        follow = adapter.invoke({}, "r-next")
        logs = adapter.logs()
    assert answer == {
        "type": "result",
        "id": "r-forge",
        "result": {"genuine": True, "child": "refused", "direct": "EBADF"},
    }
    assert follow["id"] == "r-next"
    assert logs.count('"result":"forged"') == 6  # every forged line went to the logs


def test_six_megabyte_payloads_both_ways(tmp_path: Path) -> None:
    write_files(
        tmp_path, {"index.js": "exports.h = async (e) => ({ size: e.blob.length, echo: e.blob });"}
    )
    blob = "x" * (6 * 1024 * 1024)
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        answer = adapter.invoke({"blob": blob}, timeout=30)
    assert answer["result"]["size"] == len(blob)
    assert answer["result"]["echo"] == blob


def test_many_invocations_in_one_process(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": "let n = 0; exports.h = async (e) => ++n;"})
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        answers = [adapter.invoke({}, f"id-{i}") for i in range(20)]
    assert [a["id"] for a in answers] == [f"id-{i}" for i in range(20)]
    assert [a["result"] for a in answers] == list(range(1, 21))  # one warm process


def test_cloudevent_signature_passes_the_structured_event(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"index.js": "exports.h = async (ce) => ({ type: ce.type, id: ce.id, data: ce.data });"},
    )
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:test",
        "type": "com.example.thing",
        "datacontenttype": "application/json",
        "data": {"k": [1, 2]},
    }
    answer = run_one(tmp_path, "index.h", event, signature="cloudevent")
    assert answer["result"] == {"type": "com.example.thing", "id": "e-1", "data": {"k": [1, 2]}}


def test_closing_the_request_pipe_ends_the_runtime(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": "exports.h = async () => 1;"})
    adapter = start("node", tmp_path, "index.h")
    adapter.ready()
    assert adapter.close() == 0


def test_crash_is_seen_as_end_of_answers(tmp_path: Path) -> None:
    write_files(tmp_path, {"index.js": "exports.h = async () => { process.exit(3); };"})
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        with pytest.raises(EOFError):
            adapter.invoke({})
        assert adapter.child.wait(5) == 3


@pytest.mark.parametrize("case", CASES)
def test_matrix_through_sor_local_invoke(tmp_path: Path, case: str) -> None:
    local_invoke_case("node", case, tmp_path / "fn")


# --- requests the adapter cannot read: answered at once, never a silent wait -------------------


def invoke_line(request_id: str, event_text: str) -> str:
    """An invoke line as sor writes it, with ``event_text`` spliced in as the event, verbatim."""
    ctx = json.dumps(context(request_id), separators=(",", ":"))
    return f'{{"type":"invoke","id":"{request_id}","event":{event_text},"context":{ctx}}}'


@pytest.mark.parametrize(
    ("line", "error_type", "message"),
    [
        # only the event is not JSON: the invocation fails as on Lambda, with JSON.parse's error
        (invoke_line("r-nan", '{"x": NaN}'), "SyntaxError", "is not valid JSON"),
        (invoke_line("r-cut", '{"x": '), "SyntaxError", "JSON"),
        # the envelope is broken, but the id can be read
        ('{"type":"invoke","id":"r-env","event":{},"context":{"a":', "Runtime.UnmarshalError", ""),
        ('{"type":"ping","id":"r-ping"}', "Runtime.InvalidRequest", "unknown type"),
        ('{"type":"invoke","id":"r-noctx","event":{}}', "Runtime.InvalidRequest", "context"),
    ],
)
def test_unreadable_request_with_an_id_is_answered_at_once(
    tmp_path: Path, line: str, error_type: str, message: str
) -> None:
    write_files(tmp_path, {"index.js": "exports.h = async (e) => e;"})
    request_id = line.split('"id":"', 1)[1].split('"', 1)[0]
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        adapter.send_line(line)
        answer = adapter.recv(timeout=5)
        assert (answer["type"], answer["id"]) == ("error", request_id), answer
        assert answer["error"]["errorType"] == error_type, answer
        assert message in answer["error"]["errorMessage"]
        assert adapter.invoke({"k": 1}, "after")["result"] == {"k": 1}  # and it goes on serving


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        "[1, 2]",
        "null",
        '{"type":"invoke","event":{},"context":{}}',  # no id
        '{"type":"load"}',  # only ever the first message of a deferred load (SOR_LOAD)
        '{"type":"invoke","id":7,"event":{},"context":{}}',
    ],
)
def test_unreadable_request_without_an_id_stops_the_adapter_at_once(
    tmp_path: Path, line: str
) -> None:
    write_files(tmp_path, {"index.js": "exports.h = async (e) => e;"})
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        adapter.send_line(line)
        assert adapter.child.wait(5) == 2  # sor sees the exit now, not at the deadline
    assert "sor: protocol error: a request" in adapter.logs()


def test_lone_surrogates_written_as_bytes_round_trip(tmp_path: Path) -> None:
    # A lone surrogate sent as its three bytes (ED A0 80), beside Hangul (ED 9x xx) and an emoji.
    write_files(tmp_path, {"index.js": "exports.h = async (e) => [e, e.s.length];"})
    event = {"s": "\ud800 한 😀 \udfff"}
    message = {"type": "invoke", "id": "sur", "event": event, "context": context("sur")}
    with start("node", tmp_path, "index.h") as adapter:
        adapter.ready()
        adapter.send_line(json.dumps(message, ensure_ascii=False))
        line = adapter.reader.readline(time.monotonic() + 10)
    assert b"\\ud800" in line and b"\\udfff" in line  # written back as escapes: valid UTF-8
    assert json.loads(line)["result"] == [event, 8]


def test_answers_echo_the_seal_the_handler_never_sees(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "index.js": """
exports.ok = async (e, c) => JSON.stringify([e, c, process.env]).includes('5ea1');
exports.fails = async () => { throw new Error('boom'); };
"""
        },
    )
    ctx = json.dumps(context("s-1"), separators=(",", ":"))
    sealed = '{"type":"invoke","id":"s-1","event":{},"context":' + ctx + ',"seal":"5ea1"}'
    with start("node", tmp_path, "index.ok") as adapter:
        adapter.ready()
        adapter.send_line(sealed)
        assert adapter.recv() == {"type": "result", "id": "s-1", "seal": "5ea1", "result": False}
        adapter.send_line(sealed.replace('"event":{}', '"event":{"x": NaN}'))  # not JSON
        answer = adapter.recv()
        assert (answer["type"], answer["seal"], answer["error"]["errorType"]) == (
            "error",
            "5ea1",
            "SyntaxError",
        )
        adapter.send_line('{"type":"ping","id":"s-2","seal":"5ea2"}')
        assert adapter.recv()["seal"] == "5ea2"
        adapter.send_line('{"type":"invoke","id":"s-3","event":{},"context":{"a":,"seal":"5ea3"}')
        answer = adapter.recv()
        assert (answer["error"]["errorType"], answer["seal"]) == ("Runtime.UnmarshalError", "5ea3")
    with start("node", tmp_path, "index.fails") as adapter:
        adapter.ready()
        adapter.send_line(sealed)
        answer = adapter.recv()
    assert (answer["type"], answer["seal"], answer["error"]["errorMessage"]) == (
        "error",
        "5ea1",
        "boom",
    )


def test_before_exit_never_fires_and_finally_does_its_work(tmp_path: Path) -> None:
    # runtimes/node/README.md: why beforeExit never fires under sor, and what to write instead.
    write_files(
        tmp_path,
        {
            "index.js": """
let flushed = 0;
process.on('beforeExit', () => console.log('BEFORE-EXIT'));
exports.cb = (event, context, callback) => { setTimeout(() => callback(null, flushed), 5); };
exports.flushing = async () => {
  try { return flushed; } finally { await new Promise((r) => setTimeout(r, 5)); flushed++; }
};
"""
        },
    )
    for name, expected in (("cb", [0, 0, 0]), ("flushing", [0, 1, 2])):
        with start("node", tmp_path, f"index.{name}") as adapter:
            adapter.ready()
            answers = [adapter.invoke({}, f"r-{n}")["result"] for n in range(3)]
            time.sleep(0.2)  # time for a drained loop to say so
            logs = adapter.logs()
        assert answers == expected  # the finally ran after each invocation
        assert "BEFORE-EXIT" not in logs
