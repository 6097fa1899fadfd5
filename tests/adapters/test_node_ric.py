"""sor's Node adapter under `sor run`, compared with aws-lambda-ric 3.3.0, AWS's own Node.js
runtime interface client (npm, tests/node), on the same handlers, events and Runtime API server.

Each case runs both bootstraps as real processes against a fresh RuntimeApiServer on 127.0.0.1
and compares what they posted (answers, init errors, X-Ray causes) and what they logged, with
only what legitimately differs normalised away: timestamps, the task root's path, and the
runtimes' own stack frames and file names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import Answer, RuntimeApiServer
from support.runtime_matrix import NODE_RUNTIME, start, write_files

REPO = Path(__file__).resolve().parents[2]
RIC_PACKAGE = REPO / "tests" / "node" / "node_modules" / "aws-lambda-ric"
RIC = RIC_PACKAGE / "bin" / "index.mjs"
XRAY = "Lambda-Runtime-Function-XRay-Error-Cause"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@pytest.fixture(scope="module", autouse=True)
def ric_installed() -> None:
    # Not a skip: without the reference these tests would pass by comparing nothing.
    if not RIC.exists():
        pytest.fail(f"aws-lambda-ric is not installed in {RIC_PACKAGE.parent}: make node-deps")


@dataclass
class Run:
    answers: list[Answer]
    stdout: str


def lambda_node_path(layer: Path, root: Path) -> str:
    """NODE_PATH as the bootstrap of Lambda's nodejs20.x runtime sets it (the layer in /opt)."""
    major = subprocess.run(
        ["node", "-p", "process.versions.node.split('.')[0]"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return ":".join(
        [
            f"{layer}/nodejs/node{major}/node_modules",
            f"{layer}/nodejs/node_modules",
            "/var/runtime/node_modules",
            "/var/runtime",
            str(root),
        ]
    )


def run_bootstrap(
    kind: str,
    root: Path,
    handler: str,
    events: list[bytes | Any],
    *,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    server_class: type[RuntimeApiServer] = RuntimeApiServer,
) -> Run:
    """Run ``kind`` ("sor" or "ric") for ``handler`` in ``root`` against a fresh Runtime API
    server (a ``server_class``): its answers to ``events`` (raw bytes are sent as they are), or
    its init error."""
    scratch = root.parent
    layer = scratch / "layer"
    server = server_class()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_"))}
    full_env.pop("NODE_PATH", None)
    full_env.update(
        AWS_LAMBDA_RUNTIME_API=server.address,
        LAMBDA_TASK_ROOT=str(root),
        AWS_LAMBDA_FUNCTION_NAME="compared-fn",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/compared-fn",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/01/01/[$LATEST]abc",
        _HANDLER=handler,
    )
    if kind == "ric":
        # Lambda's bootstrap gives the client its NODE_PATH; sor's adapter sets its own.
        full_env["NODE_PATH"] = lambda_node_path(layer, root)
        argv = ["node", str(RIC), handler]
    else:
        config = scratch / "sor.yml"
        config.write_text(f"version: 1\nruntime:\n  language: node\n  handler: {handler}\n")
        full_env.update(SOR_CONFIG=str(config), SOR_LAYER_DIR=str(layer))
        argv = [sys.executable, "-m", "sor", "run"]
    full_env.update(env or {})
    stdout_path = scratch / f"{kind}.stdout"
    with stdout_path.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=root, env=full_env, stdout=out, stderr=subprocess.DEVNULL)
        try:
            answers = []
            for n, event in enumerate(events):
                pending = server.submit(
                    event,
                    request_id=f"req-{n + 1}",
                    headers={"Lambda-Runtime-Trace-Id": TRACE, **(headers or {})},
                )
                while not pending.done.wait(0.05):
                    if server.init_errors:
                        answers = [server.init_errors[0]]
                        break
                    assert proc.poll() is None, f"{kind} exited with {proc.returncode}"
                else:
                    assert pending.answer is not None
                    answers.append(pending.answer)
                    continue
                break
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                server.close()
    # bytes, not read_text: universal newlines would turn a record's \r into a line break
    return Run(answers, stdout_path.read_bytes().decode("utf-8", "surrogateescape"))


def both(root: Path, handler: str, events: list[bytes | Any], **kwargs: Any) -> tuple[Run, Run]:
    return run_bootstrap("sor", root, handler, events, **kwargs), run_bootstrap(
        "ric", root, handler, events, **kwargs
    )


# --- normalising what legitimately differs -----------------------------------------------------

# Node names the client by its real path: node_modules may be a symbolic link (a worktree's).
_RUNTIME_FILES = re.compile(
    re.escape(str(RIC_PACKAGE / "dist" / "index.mjs"))
    + "|"
    + re.escape(str(RIC_PACKAGE.resolve() / "dist" / "index.mjs"))
    + "|"
    + re.escape(str(NODE_RUNTIME.parent))
    + r"/[a-z_]+\.js"
)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _frames(lines: list[str], root: Path) -> list[str]:
    """Stack lines without the frames of the runtimes themselves (which differ by nature)."""
    return [
        line
        for line in lines
        if not re.match(r"\s+at ", line) or str(root) in line or "<root>" in line
    ]


def scrub(value: Any, root: Path) -> Any:
    """``value`` with paths, timestamps and runtime frames normalised, recursively."""
    if isinstance(value, str):
        text = _RUNTIME_FILES.sub("<runtime>", value).replace(str(root), "<root>")
        text = re.sub(r"\(node:\d+\)", "(node:PID)", _TIMESTAMP.sub("<ts>", text))
        for sep in ("\n", "\r"):
            if sep in text:
                text = sep.join(_frames(text.split(sep), root))
        return text
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            value = _frames(value, root)
        elif all(isinstance(item, dict) and "path" in item for item in value):
            value = [f for f in value if str(f["path"]).startswith(str(root))]  # X-Ray frames
        return [scrub(item, root) for item in value]
    if isinstance(value, dict):
        out = {k: scrub(v, root) for k, v in value.items()}
        if isinstance(out.get("paths"), list):
            out["paths"] = [p for p in out["paths"] if p.startswith("<root>")]
        return out
    return value


def header(answer: Answer, name: str) -> str | None:
    """A header of what the runtime posted, by name in any case."""
    found = [v for k, v in answer.headers.items() if k.lower() == name.lower()]
    return found[0] if found else None


def answer_of(answer: Answer, root: Path) -> tuple[str, Any]:
    return answer.kind, scrub(answer.json(), root)


def type_and_message(answer: Answer) -> tuple[str, str, str]:
    doc = answer.json()
    return answer.kind, doc["errorType"], _RUNTIME_FILES.sub("<runtime>", doc["errorMessage"])


def logged(run: Run, root: Path) -> list[str]:
    """The records of a run as JSON text: comparing them compares the order of keys too."""
    return [json.dumps(record, ensure_ascii=False) for record in records(run, root)]


def records(run: Run, root: Path) -> list[Any]:
    """The console records of a run, normalised: text lines "TS\\tID\\tLEVEL\\tmessage" (their
    JSON tails parsed) or JSON records; the runtimes' other output is left out."""
    out: list[Any] = []
    for line in run.stdout.split("\n"):
        if re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z\t", line):
            fields = line.split("\t")
            fields[0] = "<ts>"
            tail = [json.loads(f) if f.startswith("{") else f for f in fields[4:]]
            out.append(scrub(fields[:4] + tail, root))
        elif line.startswith('{"timestamp":'):
            out.append(scrub(json.loads(line), root))
    return out


# --- item 3: handler resolution, in the client's documented order -----------------------------

ECHO = "exports.handler = async (e) => e;"
RESOLUTION: dict[str, tuple[dict[str, str], str]] = {
    "extensionless beats .js, .mjs and .cjs": (
        {
            "precedence": "exports.handler = async () => 'extensionless';",
            "precedence.js": "exports.handler = async () => '.js';",
            "precedence.mjs": "export const handler = async () => '.mjs';",
            "precedence.cjs": "exports.handler = async () => '.cjs';",
        },
        "precedence.handler",
    ),
    "an extensionless index beside index.js": (
        {"index": "exports.handler = async () => 'index';", "index.js": ECHO},
        "index.handler",
    ),
    ".js beats .mjs": (
        {
            "pj.js": "exports.handler = async () => '.js';",
            "pj.mjs": "export const handler = async () => '.mjs';",
        },
        "pj.handler",
    ),
    ".mjs beats .cjs": (
        {
            "m.mjs": "export const handler = async () => '.mjs';",
            "m.cjs": "exports.handler = async () => '.cjs';",
        },
        "m.handler",
    ),
    ".cjs alone": ({"c.cjs": "exports.handler = async () => '.cjs';"}, "c.handler"),
    "extensionless CommonJS in a type module package": (
        {"package.json": '{"type": "module"}', "app": "exports.handler = async () => 'cjs';"},
        "app.handler",
    ),
    "extensionless ESM in a type module package": (
        {"package.json": '{"type": "module"}', "app": "export const handler = async () => 'esm';"},
        "app.handler",
    ),
    "extensionless ESM in a type commonjs package": (
        {
            "package.json": '{"type": "commonjs"}',
            "app": "export const handler = async () => 'esm';",
        },
        "app.handler",
    ),
    "extensionless ESM without package.json": (
        {"app": "export const handler = async () => 'esm';"},
        "app.handler",
    ),
    ".js under type module, with top-level await": (
        {
            "package.json": '{"type": "module"}',
            "a.js": (
                "const v = await Promise.resolve('tla');\nexport const handler = async () => v;"
            ),
        },
        "a.handler",
    ),
    ".js with module.exports under type module": (
        {"package.json": '{"type": "module"}', "cjs.js": ECHO},
        "cjs.handler",
    ),
    "ESM .js under type commonjs": (
        {"package.json": '{"type": "commonjs"}', "a.js": "export const handler = async () => 1;"},
        "a.handler",
    ),
    "the nearest package.json decides": (
        {
            "package.json": '{"type": "commonjs"}',
            "src/package.json": '{"type": "module"}',
            "src/a.js": "export const handler = async () => 'nearest';",
        },
        "src/a.handler",
    ),
    "a package.json in node_modules is not looked past": (
        {
            "package.json": '{"type": "module"}',
            "node_modules/p/a.js": "exports.handler = async () => 'commonjs';",
        },
        "node_modules/p/a.handler",
    ),
    "an unreadable package.json is ignored, with a warning": (
        {"package.json": "{not json", "w.js": "exports.handler = async () => 'commonjs';"},
        "w.handler",
    ),
    "a folder with index.js": (
        {"sub/index.js": "exports.handler = async () => 'sub';"},
        "sub.handler",
    ),
    "a folder and a file of the same name": (
        {
            "foo/index.js": "exports.handler = async () => 'dir';",
            "foo.js": "exports.handler = async () => 'file';",
        },
        "foo.handler",
    ),
    "a folder without index": ({"bar/x.js": ECHO}, "bar.handler"),
    "a package in node_modules": (
        {"node_modules/mypkg/index.js": "exports.handler = async () => 'pkg';"},
        "mypkg.handler",
    ),
    "a nested export in a folder": (
        {"src/lib/app.js": "exports.a = { b: async () => 'nested' };"},
        "src/lib/app.a.b",
    ),
    "ESM default export": ({"d.mjs": "export default async () => 'default';"}, "d.default"),
}


@pytest.mark.parametrize("case", list(RESOLUTION))
def test_handler_resolution_as_aws_lambda_ric(tmp_path: Path, case: str) -> None:
    files, handler = RESOLUTION[case]
    root = write_files(tmp_path / "fn", files)
    ours, theirs = both(root, handler, [{"x": 1}])
    assert theirs.answers, "the reference answered nothing"
    if theirs.answers[0].kind == "response":
        assert [answer_of(a, root) for a in ours.answers] == [
            answer_of(a, root) for a in theirs.answers
        ]
    else:  # an init error: its type and message (the body's shape is sor's core's)
        assert [type_and_message(a) for a in ours.answers] == [
            type_and_message(a) for a in theirs.answers
        ]
    assert logged(ours, root) == logged(theirs, root)  # warnings, the Uncaught Exception


# --- init errors: type and message ----------------------------------------------------------

INIT_FAILURES: dict[str, tuple[dict[str, str], str]] = {
    "no file": ({}, "nofile.handler"),
    "a missing package": ({"needs.js": "require('not-installed-anywhere');"}, "needs.handler"),
    "a missing package from ESM": (
        {"needs.mjs": "import x from 'not-installed-anywhere';\nexport const handler = x;"},
        "needs.handler",
    ),
    "a syntax error": ({"syn.js": "exports.handler = async () => {;"}, "syn.handler"),
    "a syntax error in ESM": ({"syn.mjs": "export const handler = ;"}, "syn.handler"),
    "a throw at load": ({"boom.js": "throw new TypeError('init boom');"}, "boom.handler"),
    "a rejected top-level await": (
        {"tla.mjs": "await Promise.reject(new RangeError('tla boom'));"},
        "tla.handler",
    ),
    "an uncaught exception while loading": (
        {
            "late.mjs": (
                "setTimeout(() => { throw new Error('timer boom'); }, 1);\n"
                "await new Promise((r) => setTimeout(r, 300));\n"
                "export const handler = async () => 'never';"
            )
        },
        "late.handler",
    ),
    "not exported": ({"ok.js": "exports.value = 0;"}, "ok.handler"),
    "a falsy export": ({"ok.js": "exports.value = 0;"}, "ok.value"),
    "not a function": ({"ok.js": "exports.value = 5;"}, "ok.value"),
}


@pytest.mark.parametrize("case", list(INIT_FAILURES))
def test_init_errors_as_aws_lambda_ric(tmp_path: Path, case: str) -> None:
    files, handler = INIT_FAILURES[case]
    (tmp_path / "fn").mkdir()
    root = write_files(tmp_path / "fn", files)
    ours, theirs = both(root, handler, [{}])
    assert [a.kind for a in theirs.answers] == ["init_error"]
    assert [type_and_message(a) for a in ours.answers] == [
        type_and_message(a) for a in theirs.answers
    ]
    # the "Uncaught Exception" record both write
    assert logged(ours, root) == logged(theirs, root)


# --- results and handler errors: async, callbacks, context methods -----------------------------

STYLES = r"""
class OrderError extends Error { constructor(m) { super(m); this.name = 'OrderError'; } }
function validate(order) { if (!order.id) throw new OrderError('order has no id'); }
exports.asyncResult = async (e) => ({ got: e, n: [1, 2.5, null, true] });
exports.callback = (e, c, cb) => { setTimeout(() => cb(null, 'cb'), 5); };
exports.callbackError = (e, c, cb) => cb(new RangeError('cb failed'));
exports.callbackString = (e, c, cb) => cb('plain failure');
exports.succeed = (e, c) => { setTimeout(() => c.succeed('succeeded'), 5); };
exports.done = (e, c) => c.done(null, { done: true });
exports.doneError = (e, c) => c.done(new Error('done failed'));
exports.fail = (e, c) => c.fail(new Error('failed via context'));
exports.failNothing = (e, c) => c.fail();
exports.nothing = () => { setTimeout(() => {}, 20); };
exports.syncValue = () => 'ignored';
exports.twice = async (e, c, cb) => { cb(null, 'first'); return 'second'; };
exports.noWait = (e, c, cb) => { c.callbackWaitsForEmptyEventLoop = false; cb(null, 'now'); };
exports.doneTwice = (e, c) => { c.done(null, 'one'); c.done(null, 'two'); c.fail('three'); };
exports.undefinedResult = async () => undefined;
exports.throws = async () => { throw new Error('boom'); };
exports.nested = async (e) => { validate(e); return 'valid'; };
exports.syncThrow = () => { throw new TypeError('sync boom'); };
exports.throwString = async () => { throw 'just a string'; };
exports.throwNumber = async () => { throw 42; };
exports.throwObject = async () => { throw { a: 1 }; };
exports.rejectNothing = async () => Promise.reject();
exports.multiline = async () => { throw new TypeError('bad\nthing'); };
exports.del = async () => {
  const e = new Error('del \x7f here'); e.name = 'Del\x7fError'; throw e;
};
exports.circular = async () => { const a = {}; a.a = a; return a; };
exports.bigint = async () => ({ n: 1n });
exports.unhandled = async () => {
  Promise.reject(new Error('nobody catches me'));
  await new Promise((r) => setTimeout(r, 500));
};
exports.uncaught = (e, c, cb) => { setTimeout(() => { throw new Error('late boom'); }, 5); };
exports.withCode = async () => {
  const e = new Error('coded'); e.code = 'E_CODE'; e.extra = { k: 1 }; throw e;
};
"""

RESULTS = [
    "asyncResult",
    "callback",
    "succeed",
    "done",
    "nothing",
    "syncValue",
    "twice",
    "noWait",
    "doneTwice",
    "undefinedResult",
]
ERRORS = [
    "callbackError",
    "callbackString",
    "doneError",
    "fail",
    "failNothing",
    "throws",
    "nested",
    "syncThrow",
    "throwString",
    "throwNumber",
    "throwObject",
    "rejectNothing",
    "multiline",
    "del",
    "circular",
    "bigint",
    "unhandled",
    "uncaught",
    "withCode",
]


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    return write_files(tmp_path / "fn", {"styles.js": STYLES})


@pytest.mark.parametrize("name", RESULTS)
def test_results_as_aws_lambda_ric(styles: Path, name: str) -> None:
    ours, theirs = both(styles, f"styles.{name}", [{"id": 7}, {"id": 8}])
    assert [a.kind for a in theirs.answers] == ["response", "response"]
    assert [a.body for a in ours.answers] == [a.body for a in theirs.answers]  # byte for byte


@pytest.mark.parametrize("name", ERRORS)
def test_handler_error_type_and_message_as_aws_lambda_ric(styles: Path, name: str) -> None:
    ours, theirs = both(styles, f"styles.{name}", [{}])
    assert [a.kind for a in theirs.answers] == ["error"]
    assert [type_and_message(a) for a in ours.answers] == [
        type_and_message(a) for a in theirs.answers
    ]


@pytest.mark.parametrize("name", ERRORS)
def test_error_answers_in_node_shape_as_aws_lambda_ric(styles: Path, name: str) -> None:
    """Issue #19 item 4: the whole error document, as Node's runtime posts it."""
    ours, theirs = both(styles, f"styles.{name}", [{}])
    assert list(theirs.answers[0].json()) == ["errorType", "errorMessage", "trace"]
    assert [answer_of(a, styles) for a in ours.answers] == [
        answer_of(a, styles) for a in theirs.answers
    ]
    # and the record written before the answer: Invoke Error, Uncaught Exception, ...
    assert logged(ours, styles) == logged(theirs, styles)
    assert any("ERROR" in record for record in logged(theirs, styles))


@pytest.mark.parametrize(
    "name", ["throws", "throwString", "failNothing", "unhandled", "uncaught", "circular"]
)
def test_error_records_in_json_as_aws_lambda_ric(styles: Path, name: str) -> None:
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON"}
    ours, theirs = both(styles, f"styles.{name}", [{}], env=env)
    expected = records(theirs, styles)
    assert expected and all(r["level"] == "ERROR" for r in expected), expected
    assert logged(ours, styles) == logged(theirs, styles)


@pytest.mark.parametrize("name", ["throws", "nested", "multiline", "withCode", "throwString"])
def test_adapter_error_and_xray_cause_as_aws_lambda_ric(styles: Path, name: str) -> None:
    """The adapter's protocol answer carries the client's ERROR (as stackTrace) and X-Ray cause."""
    (theirs,) = run_bootstrap("ric", styles, f"styles.{name}", [{}]).answers
    with start("node", styles, f"styles.{name}") as adapter:
        adapter.ready()
        ours = adapter.invoke({})
    body = theirs.json()
    assert ours["type"] == "error"
    error = ours["error"]
    assert scrub([error["errorType"], error["errorMessage"], error["stackTrace"]], styles) == scrub(
        [body["errorType"], body["errorMessage"], body["trace"]], styles
    )
    cause = json.loads(header(theirs, XRAY) or "null")
    if name == "nested":  # the frames of the user's code, both of them, innermost first
        assert [f["label"] for f in scrub(cause, styles)["exceptions"][0]["stack"]] == [
            "validate",
            "exports.nested [as handler]",
        ]
    assert scrub(ours["xray"], styles) == scrub(cause, styles)


def test_xray_header_as_aws_lambda_ric(styles: Path) -> None:
    ours, theirs = both(styles, "styles.nested", [{}])
    assert header(theirs.answers[0], XRAY), "the reference sent no X-Ray cause"
    assert [scrub(json.loads(header(a, XRAY) or "null"), styles) for a in ours.answers] == [
        scrub(json.loads(header(a, XRAY) or "null"), styles) for a in theirs.answers
    ]


def test_context_as_aws_lambda_ric(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "fn",
        {
            "ctx.js": """
exports.handler = async (event, context) => ({
  keys: Object.keys(context),
  values: Object.fromEntries(Object.entries(context).filter(([, v]) => typeof v !== 'function')),
  remaining: context.getRemainingTimeInMillis() > 0,
  trace: process.env._X_AMZN_TRACE_ID,
  requestSymbol: globalThis[Symbol.for('aws.lambda.runtime.requestId')],
});
"""
        },
    )
    headers = {
        "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}, "env": {"e": 1}}),
        "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "cid-1"}),
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
    }
    ours, theirs = both(root, "ctx.handler", [{}, {}], headers=headers)
    assert [a.json() for a in ours.answers] == [a.json() for a in theirs.answers]
    values = theirs.answers[1].json()["values"]
    assert (values["awsRequestId"], values["tenantId"]) == ("req-2", "tenant-7")


def test_json_records_name_the_tenant_as_aws_lambda_ric(tmp_path: Path) -> None:
    root = write_files(tmp_path / "fn", {"t.js": "exports.h = async () => { console.log('hi'); };"})
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON"}
    headers = {"Lambda-Runtime-Aws-Tenant-Id": "tenant-7"}
    ours, theirs = both(root, "t.h", [{}], env=env, headers=headers)
    assert [r["tenantId"] for r in records(theirs, root)] == ["tenant-7"]
    assert logged(ours, root) == logged(theirs, root)


# --- items 1 and 2: events as Lambda sent them --------------------------------------------------

RAW_EVENTS = {
    "a number over double range": b'{"x": 1e400}',
    "a negative number over double range": b'{"x": -1e400}',
    "NaN, which is not JSON": b'{"x": NaN}',
    "a lone surrogate escape": b'"\\ud800"',
    "lone and paired surrogates": b'{"a": "\\udfff \\ud83d\\ude00 \\ud800x"}',
    "raw UTF-8": '{"a": "é ☃ 😀"}'.encode(),
    "a big integer": b"12345678901234567890",
    "duplicate keys": b'{"a": 1, "a": 2}',
    "minus zero and exponents": b"[-0, 1.0, 1E2, 0.1e-2]",
    "whitespace and a newline": b'{\n  "a" : [ 1 ,2 ]\n}',
}


@pytest.mark.parametrize("case", list(RAW_EVENTS))
def test_events_as_aws_lambda_ric(tmp_path: Path, case: str) -> None:
    root = write_files(tmp_path / "fn", {"index.js": ECHO})
    ours, theirs = both(root, "index.handler", [RAW_EVENTS[case], {"after": True}])
    assert len(theirs.answers) == 2
    # responses byte for byte (JSON.stringify's own bytes), errors as whole documents
    assert [answer_of(a, root) if a.kind == "error" else a.body for a in ours.answers] == [
        answer_of(a, root) if a.kind == "error" else a.body for a in theirs.answers
    ]


# --- item 5 and issue #15: console records, text and JSON, and level filtering ---------------

LOGGING = r"""
console.log('at load');
exports.handler = async (event) => {
  const err = new TypeError('bad value');
  err.code = 'E_BAD';
  console.log('plain');
  console.log('a %s=%d', 'n', 3, { x: [1, 2] }, 5);
  console.log();
  console.info('line one\nline two');
  console.debug('debugging');
  console.trace('tracing');
  console.warn({ k: [1, 2], s: 'x' });
  console.error(err);
  console.error('failed:', err);
  console.fatal('the end');
  console.log(null);
  console.log(42);
  console.log(['a', { b: 1 }]);
  console.table([{ a: 1 }]);
  console.assert(false, 'asserted');
  console.log('unicode é ☃ 😀');
  const circ = {}; circ.self = circ;
  console.log(circ);
  if (event.fail) throw err;
  return 'logged';
};
"""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        {"AWS_LAMBDA_LOG_FORMAT": "json", "AWS_LAMBDA_LOG_LEVEL": "warn"},
        {"AWS_LAMBDA_LOG_LEVEL": "ERROR"},
        {"AWS_LAMBDA_LOG_LEVEL": "bogus"},
    ],
    ids=["text", "json", "json-warn", "text-error", "unknown-level"],
)
def test_console_records_as_aws_lambda_ric(tmp_path: Path, env: dict[str, str]) -> None:
    root = write_files(tmp_path / "fn", {"logging.js": LOGGING})
    ours, theirs = both(root, "logging.handler", [{}, {"fail": True}], env=env)
    assert [a.kind for a in theirs.answers] == ["response", "error"]
    expected = records(theirs, root)
    assert len(expected) >= 3, theirs.stdout  # the reference wrote records: they are compared
    assert logged(ours, root) == logged(theirs, root)  # keys, their order, values
    json_format = "AWS_LAMBDA_LOG_FORMAT" in env
    assert all(isinstance(r, dict) == json_format for r in expected)
    levels = {r["level"] if isinstance(r, dict) else r[2] for r in expected}
    if env.get("AWS_LAMBDA_LOG_LEVEL") == "warn":
        assert levels == {"WARN", "ERROR", "FATAL"}
    elif env.get("AWS_LAMBDA_LOG_LEVEL") == "ERROR":
        assert levels == {"ERROR", "FATAL"}
    else:
        assert levels == {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}


def test_text_records_are_one_line_each(tmp_path: Path) -> None:
    root = write_files(tmp_path / "fn", {"logging.js": LOGGING})
    run = run_bootstrap("sor", root, "logging.handler", [{}])
    lines = [line for line in run.stdout.split("\n") if "\treq-1\t" in line]
    multi = [line for line in lines if "line one" in line]
    assert multi and multi[0].endswith("\tINFO\tline one\rline two")
    assert all(
        re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-1\t[A-Z]+\t", x) for x in lines
    )


# --- item 6: NODE_PATH into the layer ---------------------------------------------------------

LAYERED = {
    "uses.js": """
exports.handler = async () => ({
  nodePath: process.env.NODE_PATH,
  shared: require('shared-lib').name,
  versioned: require('versioned-lib').name,
});
""",
}


def write_layer(tmp_path: Path) -> None:
    major = lambda_node_path(tmp_path, tmp_path).split("/nodejs/node", 1)[1].split("/", 1)[0]
    write_files(
        tmp_path / "layer" / "nodejs",
        {
            "node_modules/shared-lib/index.js": "exports.name = 'shared from the layer';",
            f"node{major}/node_modules/versioned-lib/index.js": "exports.name = 'versioned';",
            # the versioned folder comes first
            "node_modules/versioned-lib/index.js": "exports.name = 'unversioned';",
            "node_modules/layer-handler/index.js": (
                "exports.handler = async () => 'from the layer';"
            ),
        },
    )


@pytest.mark.parametrize("handler", ["uses.handler", "layer-handler.handler"])
def test_node_path_into_the_layer_as_lambda_sets_it(tmp_path: Path, handler: str) -> None:
    root = write_files(tmp_path / "fn", LAYERED)
    write_layer(tmp_path)
    ours, theirs = both(root, handler, [{}])
    assert theirs.answers[0].kind == "response", theirs.answers[0].body
    assert [a.json() for a in ours.answers] == [a.json() for a in theirs.answers]


def test_a_node_path_of_the_users_own_is_kept(tmp_path: Path) -> None:
    root = write_files(tmp_path / "fn", LAYERED)
    write_layer(tmp_path)
    own = write_files(tmp_path / "own", {"shared-lib/index.js": "exports.name = 'own';"})
    env = {"NODE_PATH": f"{own}:{tmp_path}/layer/nodejs/node_modules"}
    ours, theirs = both(root, "uses.handler", [{}], env=env)
    assert ours.answers[0].json()["shared"] == "own"
    assert [a.json() for a in ours.answers] == [a.json() for a in theirs.answers]
