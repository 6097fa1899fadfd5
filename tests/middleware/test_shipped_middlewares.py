"""The middlewares that ship with sor, run for real through the Pipeline, in both modes."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import Middleware
from sor.errors import FunctionError, InvocationTimeout, MiddlewareError, SorError
from sor.logs import Log
from sor.middleware.pipeline import Pipeline
from sor.resources import data_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook, Mode

MODES: tuple[Mode, ...] = ("exec", "persistent")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def shipped(
    name: str, mode: Mode = "exec", hooks: tuple[Hook, ...] = ("before", "after", "error")
) -> Middleware:
    return Middleware(name=name, path=data_path("middlewares", name), mode=mode, hooks=hooks)


class Handler:
    def __init__(self, result: Any = None, error: SorError | None = None) -> None:
        self.calls: list[Any] = []
        self.result = result if result is not None else {"statusCode": 200, "body": "ok"}
        self.error = error

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        if self.error is not None:
            raise self.error
        return self.result


class Harness:
    """A started Pipeline over shipped middlewares, its log, and one call per ``invoke``."""

    def __init__(self, middlewares: list[Middleware], tmp: Path, **settings: str) -> None:
        # python3 must be the one with jsonschema, as it is where sor is installed
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.log = io.StringIO()
        self.pipeline = Pipeline(
            middlewares, log=Log(self.log), env={"PATH": path, "TMPDIR": str(tmp), **settings}
        )
        self.pipeline.start()
        self.count = 0

    def invoke(self, event: Any, handler: Handler) -> Any:
        self.count += 1
        context = {"aws_request_id": f"req-{self.count}", "deadline_ms": 0, "function_name": "f"}
        now = time.monotonic()
        return self.pipeline.run(event, context, handler, now + 10, now + 11, {})


MakeHarness = Callable[..., Harness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[MakeHarness]:
    made: list[Harness] = []
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()

    def make(middlewares: list[Middleware], **settings: str) -> Harness:
        made.append(Harness(middlewares, tmp, **settings))
        return made[-1]

    yield make
    for h in made:
        h.pipeline.close()


def test_every_shipped_middleware_is_an_executable_with_a_shebang() -> None:
    for name in ("log-event", "validate-event", "cors", "warmup", "http-errors"):
        path = data_path("middlewares", name)
        assert os.access(path, os.X_OK), name
        assert path.read_text().startswith("#!/"), name
    readme = data_path("middlewares", "README.md").read_text()
    for name in ("log-event", "validate-event", "cors", "warmup", "http-errors"):
        assert f"## {name}" in readme


# --- log-event ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_log_event_redacts_and_keeps_the_payload(harness: MakeHarness, mode: Mode) -> None:
    h = harness([shipped("log-event", mode)], LOG_EVENT_REDACT="Authorization,password")
    event = {
        "headers": {"authorization": "Bearer abc", "Accept": "*/*"},
        "body": json.dumps({"user": "ann", "password": "hunter2"}),
    }
    handler = Handler()
    assert h.invoke(event, handler) == {"statusCode": 200, "body": "ok"}
    assert handler.calls == [event]
    lines = [ln for ln in h.log.getvalue().splitlines() if ln.startswith("[log-event] ")]
    assert len(lines) == 1
    logged = json.loads(lines[0].removeprefix("[log-event] "))
    assert logged == {
        "logEvent": "before",
        "requestId": "req-1",
        "event": {
            "headers": {"authorization": "***", "Accept": "*/*"},
            "body": {"user": "ann", "password": "***"},
        },
    }
    assert "hunter2" not in h.log.getvalue() and "Bearer" not in h.log.getvalue()


def test_log_event_can_log_results_too(harness: MakeHarness) -> None:
    h = harness([shipped("log-event")], LOG_EVENT_HOOKS="before,after", LOG_EVENT_REDACT="token")
    h.invoke({"q": 1}, Handler({"token": "t0p", "n": 2}))
    records = [json.loads(ln.split("] ", 1)[1]) for ln in h.log.getvalue().splitlines()]
    assert records == [
        {"logEvent": "before", "requestId": "req-1", "event": {"q": 1}},
        {"logEvent": "after", "requestId": "req-1", "result": {"token": "***", "n": 2}},
    ]


# --- validate-event ----------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


@pytest.mark.parametrize("mode", MODES)
def test_validate_event(harness: MakeHarness, tmp_path: Path, mode: Mode) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    h = harness(
        [shipped("validate-event", mode)],
        VALIDATE_EVENT_SCHEMA="schema.json",
        LAMBDA_TASK_ROOT=str(tmp_path),
    )
    handler = Handler()
    assert h.invoke({"name": "ann", "age": 3}, handler) == {"statusCode": 200, "body": "ok"}
    assert handler.calls == [{"name": "ann", "age": 3}]
    response = h.invoke({"age": -1}, handler)
    assert len(handler.calls) == 1  # the invalid event never reached the handler
    assert response["statusCode"] == 400
    assert response["headers"] == {"Content-Type": "application/json"}
    assert json.loads(response["body"]) == {
        "message": "Invalid request",
        "errors": [
            {"path": "$", "message": "'name' is a required property"},
            {"path": "$.age", "message": "-1 is less than the minimum of 0"},
        ],
    }


def test_validate_event_body_target(harness: MakeHarness, tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    h = harness(
        [shipped("validate-event")],
        VALIDATE_EVENT_SCHEMA=str(tmp_path / "schema.json"),
        VALIDATE_EVENT_TARGET="body",
        VALIDATE_EVENT_STATUS="422",
    )
    handler = Handler()
    h.invoke({"body": json.dumps({"name": "x", "age": 1})}, handler)
    assert len(handler.calls) == 1
    bad = h.invoke({"body": "{not json"}, handler)
    assert bad["statusCode"] == 422 and "the body is not JSON" in bad["body"]
    bad = h.invoke({"body": json.dumps({"name": 5, "age": 1})}, handler)
    assert json.loads(bad["body"])["errors"] == [
        {"path": "$.name", "message": "5 is not of type 'string'"}
    ]
    assert len(handler.calls) == 1


@pytest.mark.parametrize("mode", MODES)
def test_validate_event_without_a_schema_fails_clearly(
    harness: MakeHarness, tmp_path: Path, mode: Mode
) -> None:
    h = harness(
        [shipped("validate-event", mode)], VALIDATE_EVENT_SCHEMA=str(tmp_path / "nope.json")
    )
    with pytest.raises(MiddlewareError) as info:
        h.invoke({}, Handler())
    assert "validate-event (before)" in info.value.message
    assert "cannot read the schema" in info.value.message and "nope.json" in info.value.message


# --- cors --------------------------------------------------------------------------------------


@needs_node
@pytest.mark.parametrize("mode", MODES)
def test_cors_adds_headers_and_answers_preflight(harness: MakeHarness, mode: Mode) -> None:
    h = harness([shipped("cors", mode)], CORS_ORIGINS="https://example.com", CORS_MAX_AGE="600")
    handler = Handler({"statusCode": 201, "headers": {"X-Id": "7"}, "body": "{}"})
    response = h.invoke({"httpMethod": "POST", "headers": {}}, handler)
    assert response == {
        "statusCode": 201,
        "headers": {"X-Id": "7", "Access-Control-Allow-Origin": "https://example.com"},
        "body": "{}",
    }
    preflight = h.invoke({"requestContext": {"http": {"method": "OPTIONS"}}}, handler)
    assert len(handler.calls) == 1
    assert preflight["statusCode"] == 204
    assert preflight["headers"]["Access-Control-Allow-Origin"] == "https://example.com"
    assert preflight["headers"]["Access-Control-Max-Age"] == "600"
    assert "POST" in preflight["headers"]["Access-Control-Allow-Methods"]
    assert h.invoke({}, Handler(["not", "http"])) == ["not", "http"]


@needs_node
@pytest.mark.parametrize("mode", MODES)
def test_cors_echoes_an_allowed_origin_from_a_list(
    harness: MakeHarness, tmp_path: Path, mode: Mode
) -> None:
    h = harness(
        [shipped("cors", mode), shipped("http-errors", hooks=("error",))],
        CORS_ORIGINS="https://a.example, https://b.example",
    )
    ok = h.invoke({"headers": {"origin": "https://b.example"}}, Handler())
    assert ok["headers"] == {"Access-Control-Allow-Origin": "https://b.example", "Vary": "Origin"}
    other = h.invoke({"headers": {"Origin": "https://evil.example"}}, Handler())
    assert "Access-Control-Allow-Origin" not in other.get("headers", {})
    failed = h.invoke(
        {"headers": {"origin": "https://a.example"}}, Handler(error=InvocationTimeout("slow"))
    )
    assert failed["statusCode"] == 504  # made by http-errors, inside cors
    assert failed["headers"]["Access-Control-Allow-Origin"] == "https://a.example"
    assert list((tmp_path / "tmpdir").iterdir()) == []  # exec mode's notes are cleaned up


# --- warmup ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_warmup_answers_pings_without_the_handler(harness: MakeHarness, mode: Mode) -> None:
    h = harness([shipped("warmup", mode)])
    handler = Handler()
    assert h.invoke({"source": "serverless-plugin-warmup"}, handler) == {"warmup": True}
    assert h.invoke({"source": "serverless-plugin-warmup", "x": 1}, handler) == {"warmup": True}
    assert handler.calls == []
    assert h.invoke({"source": "aws.events"}, handler) == {"statusCode": 200, "body": "ok"}
    assert handler.calls == [{"source": "aws.events"}]


WARMUP_LOOKALIKES: list[Any] = [
    {  # an API Gateway request with ?source=serverless-plugin-warmup
        "resource": "/",
        "httpMethod": "GET",
        "queryStringParameters": {"source": "serverless-plugin-warmup"},
        "multiValueQueryStringParameters": {"source": ["serverless-plugin-warmup"]},
        "body": None,
    },
    {  # an HTTP API request with the same query string and a JSON body saying it too
        "version": "2.0",
        "rawQueryString": "source=serverless-plugin-warmup",
        "queryStringParameters": {"source": "serverless-plugin-warmup"},
        "body": json.dumps({"source": "serverless-plugin-warmup"}),
    },
    {"detail": {"source": "serverless-plugin-warmup"}, "source": "aws.events"},
    {'sour"ce': "serverless-plugin-warmup", "note": '"source":"serverless-plugin-warmup"'},
    [{"source": "serverless-plugin-warmup"}],
    "serverless-plugin-warmup",
]


@pytest.mark.parametrize("mode", MODES)
def test_warmup_only_looks_at_the_top_level_source(harness: MakeHarness, mode: Mode) -> None:
    h = harness([shipped("warmup", mode)])
    handler = Handler()
    for event in WARMUP_LOOKALIKES:
        assert h.invoke(event, handler) == {"statusCode": 200, "body": "ok"}
    assert handler.calls == WARMUP_LOOKALIKES
    ping = {
        "nested": {"a": ["]}", {"b": '\\"}'}]},
        "source": "serverless-plugin-warmup",
        "after": {"source": "other"},
    }
    assert h.invoke(ping, handler) == {"warmup": True}
    assert len(handler.calls) == len(WARMUP_LOOKALIKES)


def test_warmup_settings(harness: MakeHarness) -> None:
    h = harness([shipped("warmup")], WARMUP_SOURCE="my.pinger", WARMUP_RESPONSE='"pong"')
    handler = Handler()
    assert h.invoke({"source": "my.pinger"}, handler) == "pong"
    h.invoke({"source": "serverless-plugin-warmup"}, handler)
    assert len(handler.calls) == 1


# --- http-errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_http_errors_maps_error_types_to_statuses(harness: MakeHarness, mode: Mode) -> None:
    h = harness([shipped("http-errors", mode)], HTTP_ERRORS_STATUS="CardDeclined=402")
    cases = [
        (FunctionError({"errorType": "NotFoundError", "errorMessage": "no user 7"}), 404),
        (FunctionError({"errorType": "app.errors.Forbidden", "errorMessage": "no"}), 403),
        (FunctionError({"errorType": "CardDeclinedError", "errorMessage": "declined"}), 402),
        (FunctionError({"errorType": "HTTP418", "errorMessage": "teapot"}), 418),
        (InvocationTimeout("the handler ran past 3.0s"), 504),
        (FunctionError({"errorType": "KeyError", "errorMessage": "'db_password'"}), 500),
    ]
    for error, status in cases:
        response = h.invoke({}, Handler(error=error))
        body = json.loads(response["body"])
        assert response["statusCode"] == status
        assert body["requestId"] == f"req-{h.count}"
        if status < 500:
            assert body["message"] == error.payload()["errorMessage"]
        else:  # server errors do not leak their message
            assert error.payload()["errorMessage"] not in response["body"]


def test_http_errors_expose(harness: MakeHarness) -> None:
    h = harness([shipped("http-errors", hooks=("error",))], HTTP_ERRORS_EXPOSE="true")
    response = h.invoke({}, Handler(error=FunctionError({"errorType": "E", "errorMessage": "x1"})))
    assert response["statusCode"] == 500 and json.loads(response["body"])["message"] == "x1"


@needs_node
def test_cors_outside_http_errors_decorates_error_responses(harness: MakeHarness) -> None:
    h = harness([shipped("cors", "persistent"), shipped("warmup"), shipped("http-errors")])
    error = FunctionError({"errorType": "ConflictError", "errorMessage": "exists"})
    response = h.invoke({"httpMethod": "PUT"}, Handler(error=error))
    assert response["statusCode"] == 409
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
