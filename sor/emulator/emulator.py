"""sor's embedded emulator: the Lambda Runtime API for one bootstrap.

``Emulator`` serves ``/2018-06-01/runtime/...`` on 127.0.0.1 (an ephemeral port) to the bootstrap it
starts in ``DIR`` with the Lambda environment, and runs invocations through it one at a time
(``sor.emulator.sandbox``). ``sor.emulator.invoke_endpoint`` puts RIE's ``POST
/2015-03-31/functions/function/invocations`` in front of it. Both servers are ``sor.http.server``'s
threaded HTTP/1.1 servers: the emulator is the only part of sor that serves HTTP.
"""

from __future__ import annotations

import json
import re
import select
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from sor.emulator.answers import (
    InvokeResult,
    accepted_answer,
    client_context_error_answer,
    dry_run_answer,
    invocation_type_error_answer,
    request_too_large_answer,
    service_error_answer,
    tenant_id_error_answer,
)
from sor.emulator.extensions import MAX_REGISTER_BODY
from sor.emulator.extensions import PREFIX as EXTENSION_PREFIX
from sor.emulator.sandbox import Sandbox
from sor.errors import UsageError
from sor.http.server import RequestHandler, Server
from sor.limits import MAX_PAYLOAD
from sor.logs import Log

_PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(rf"^{_PREFIX}/invocation/([^/]+)/(response|error)$")
_ACCOUNT = "012345678912"  # RIE's account id in the invoked function ARN


def lambda_environment(
    base: Mapping[str, str], task_root: str, runtime_api: str, timeout: float, handler: str | None
) -> dict[str, str]:
    """The bootstrap's environment: ``base`` (winning over the defaults) and Lambda's variables."""
    env = dict(base)
    name = env.get("AWS_LAMBDA_FUNCTION_NAME") or Path(task_root).name or "test_function"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"
    defaults = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    if handler:
        defaults["_HANDLER"] = handler
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    env["LAMBDA_TASK_ROOT"] = task_root
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = f"{timeout:g}"
    return env


class _RuntimeApiServer(Server):
    def __init__(self, sandbox: Sandbox, arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.sandbox = sandbox
        self.arn = arn


class _RuntimeApiHandler(RequestHandler):
    """The Lambda Runtime API, as the bootstrap sees it."""

    server: _RuntimeApiServer

    def do_GET(self) -> None:
        if self.path == f"{EXTENSION_PREFIX}/event/next":
            self._extension_next()
            return
        if self.path != f"{_PREFIX}/invocation/next":
            self.not_found()
            return
        sandbox = self.server.sandbox
        inv = sandbox.next_invocation(self._peer_gone)
        if inv is None:
            self.close_connection = True  # stopping, restarted, or a caller that has gone
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.server.arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        if inv.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
        if inv.tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = inv.tenant_id
        try:
            sent = self.answer(200, inv.payload, headers)
        except Exception as exc:
            # Never leave the invocation delivered yet unsent: its caller would wait for nothing.
            message = f"RequestId: {inv.request_id} could not be sent to the runtime: {exc}"
            sandbox.log.error(message, inv.request_id)
            sandbox.fail_invocation(inv, service_error_answer(message))
            return
        if not sent:
            sandbox.return_invocation(inv)

    def _register(self) -> None:
        body = self.read_body(MAX_REGISTER_BODY)
        if body is None:
            return
        name = self.headers.get("Lambda-Extension-Name", "")
        given = body if isinstance(body, bytes) else b"too large"
        status, value, message = self.server.sandbox.register_extension(name, given)
        if status != 200:
            self.answer_json(status, {"errorMessage": message, "errorType": value})
            return
        env = self.server.sandbox.env
        info = {
            "functionName": env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            "functionVersion": env.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
            "handler": env.get("_HANDLER", ""),
        }
        headers = {"Content-Type": "application/json", "Lambda-Extension-Identifier": value}
        self.answer(200, json.dumps(info).encode(), headers)

    def _extension_next(self) -> None:
        identifier = self.headers.get("Lambda-Extension-Identifier", "")
        if not self.server.sandbox.hold_extension(identifier, self._peer_gone):
            message = f"Unknown extension {identifier}"
            error = {"errorMessage": message, "errorType": "Extension.UnknownExtensionIdentifier"}
            self.answer_json(403, error)
            return
        self.close_connection = True  # the bootstrap has ended: nothing will ever be sent

    def do_POST(self) -> None:
        if self.path == f"{EXTENSION_PREFIX}/register":
            self._register()
            return
        sandbox = self.server.sandbox
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "")
        match = _INVOCATION.match(self.path)
        if match is None and self.path != f"{_PREFIX}/init/error":
            if self.read_body(0) is not None:
                self.not_found()
            return
        body = self.read_body(MAX_PAYLOAD)
        if body is None:
            return
        if match is None:
            outcome = sandbox.post_init_error(body if isinstance(body, bytes) else b"", error_type)
        elif isinstance(body, int):
            outcome = sandbox.response_too_large(match.group(1), body)
        elif match.group(2) == "response":
            outcome = sandbox.post_response(match.group(1), body)
        else:
            outcome = sandbox.post_error(match.group(1), body, error_type)
        status, kind, message = outcome
        if status == 202:
            self.answer_json(202, {"status": "OK"})
        else:
            self.answer_json(status, {"errorMessage": message, "errorType": kind})

    def _peer_gone(self) -> bool:
        """True when the bootstrap has closed this connection (e.g. it was killed)."""
        try:
            poller = select.poll()  # not select(): any descriptor number works
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except BlockingIOError:
            return False
        except OSError:
            return True


class Emulator:
    """The embedded Lambda emulator, usable in-process: ``start``, ``invoke``..., ``stop``."""

    def __init__(
        self,
        directory: str | Path,
        timeout: float = 3.0,
        env: Mapping[str, str] | None = None,
        bootstrap: Sequence[str] | None = None,
        log: Log | None = None,
        *,
        handler: str | None = None,
    ) -> None:
        self.directory = str(Path(directory).resolve())
        self.timeout = timeout
        self.base_env = dict(env or {})
        self.bootstrap = list(bootstrap or [sys.executable, "-m", "sor", "run"])
        self.log = log if log is not None else Log()
        self.handler = handler
        self.env: dict[str, str] = {}
        self._sandbox: Sandbox | None = None
        self._server: _RuntimeApiServer | None = None

    @property
    def runtime_api(self) -> str:
        """host:port of the Runtime API (once started)."""
        assert self._server is not None, "the emulator is not started"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Serve the Runtime API and start the bootstrap; UsageError when it cannot start."""
        if not Path(self.directory).is_dir():
            raise UsageError(f"{self.directory} is not a directory")
        sandbox = Sandbox(
            self.bootstrap, cwd=self.directory, env={}, timeout=self.timeout, log=self.log
        )
        self._server = _RuntimeApiServer(sandbox, "")
        self.env = lambda_environment(
            self.base_env, self.directory, self.runtime_api, self.timeout, self.handler
        )
        sandbox.env = self.env
        region, name = self.env["AWS_REGION"], self.env["AWS_LAMBDA_FUNCTION_NAME"]
        arn = f"arn:aws:lambda:{region}:{_ACCOUNT}:function:{name}"
        self._server.arn = _header_safe(arn)  # a directory name may be anything
        threading.Thread(target=self._server.serve_forever, daemon=True, name="sor-rapi").start()
        self._sandbox = sandbox
        try:
            sandbox.start()
        except OSError as exc:
            self.stop()
            raise UsageError(
                f"cannot start the bootstrap {shlex.join(self.bootstrap)}: {exc}"
            ) from None

    def invoke(
        self,
        payload: bytes,
        client_context: str | None = None,
        *,
        tenant_id: str | None = None,
        invocation_type: str = "RequestResponse",
    ) -> InvokeResult:
        """One invocation; ``client_context`` is the JSON object text the runtime gets (a 400
        answer when it is not one; see ``client_context_header``), ``tenant_id`` reaches it as
        `Lambda-Runtime-Aws-Tenant-Id`. ``invocation_type`` as Lambda's: `Event` answers 202 at
        once and runs it in the background (its failure logged), `DryRun` 204 without running."""
        assert self._sandbox is not None, "the emulator is not started"
        if invocation_type not in _INVOCATION_TYPES:
            return invocation_type_error_answer(invocation_type)
        if len(payload) > MAX_PAYLOAD:
            return request_too_large_answer(MAX_PAYLOAD)
        header = None if client_context is None else client_context_header(client_context)
        if client_context is not None and header is None:
            return client_context_error_answer()
        if tenant_id is not None and not _tenant_id_ok(tenant_id):
            return tenant_id_error_answer()
        if invocation_type == "DryRun":
            return dry_run_answer()
        if invocation_type == "Event":
            threading.Thread(
                target=self._in_background,
                args=(self._sandbox, payload, header, tenant_id),
                name="sor-event",
                daemon=True,
            ).start()
            return accepted_answer()
        return self._sandbox.invoke(payload, header, tenant_id=tenant_id)

    def _in_background(
        self, sandbox: Sandbox, payload: bytes, context: str | None, tenant_id: str | None
    ) -> None:
        """An `Event` invocation: nobody waits for its answer, so a failure is logged."""
        try:
            result = sandbox.invoke(payload, context, tenant_id=tenant_id)
        except Exception as exc:  # a bug of ours: still said, never a silent loss
            self.log.error(f"asynchronous invocation failed: {type(exc).__name__}: {exc}")
            return
        if result.function_error is not None or result.status >= 300:
            what = result.error_type() or f"HTTP {result.status}"
            self.log.error(f"asynchronous invocation failed: {what}")

    def bootstrap_pid(self) -> int | None:
        """The running bootstrap's process id (it leads its own process group)."""
        return self._sandbox.pid() if self._sandbox is not None else None

    def stop(self) -> None:
        """Stop the bootstrap (SIGTERM, then SIGKILL to all it started) and the server."""
        if self._sandbox is not None:
            self._sandbox.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
_MAX_TENANT_ID = 256


def _tenant_id_ok(value: str) -> bool:
    """A tenant id that can travel in a header: 1 to 256 printable ASCII characters."""
    return 0 < len(value) <= _MAX_TENANT_ID and value.isascii() and value.isprintable()


def _header_safe(text: str) -> str:
    """``text`` with what a header cannot carry (beyond printable ASCII) percent-encoded."""
    from urllib.parse import quote

    return "".join(c if " " <= c <= "~" else quote(c, safe="") for c in text)


def client_context_header(text: str) -> str | None:
    """The ``Lambda-Runtime-Client-Context`` value for the client context ``text``, or None
    when ``text`` is not a JSON object (Lambda refuses it). Printable ASCII is passed as
    given, as Lambda does; anything else (UTF-8, CR/LF) is re-encoded with JSON's ``\\u``
    escapes: the same JSON value, and safe in a header."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    if text.isascii() and text.isprintable():
        return text
    return json.dumps(value, ensure_ascii=True)
