"""sor's embedded emulator: the Lambda Runtime API for one bootstrap.

``Emulator`` serves ``/2018-06-01/runtime/...`` (``sor.emulator.runtime_api``) on 127.0.0.1 (an
ephemeral port) to the bootstrap it starts in ``DIR`` with the Lambda environment, and runs
invocations through it, one at a time or ``max_concurrency`` at once (``sor.emulator.sandbox``).
``sor.emulator.invoke_endpoint`` puts RIE's ``POST /2015-03-31/functions/function/invocations``
and the function URLs in front of it. Both servers are ``sor.http.server``'s
threaded HTTP/1.1 servers: the emulator is the only part of sor that serves HTTP.
"""

from __future__ import annotations

import json
import shlex
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
    tenant_id_error_answer,
)
from sor.emulator.runtime_api import RuntimeApiServer
from sor.emulator.sandbox import Sandbox
from sor.errors import UsageError
from sor.limits import MAX_PAYLOAD
from sor.logs import Log

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
        max_concurrency: int = 1,
    ) -> None:
        self.directory = str(Path(directory).resolve())
        self.timeout = timeout
        self.base_env = dict(env or {})
        self.bootstrap = list(bootstrap or [sys.executable, "-m", "sor", "run"])
        self.log = log if log is not None else Log()
        self.handler = handler
        if max_concurrency < 1:
            raise UsageError(f"max_concurrency {max_concurrency}: at least 1")
        self.max_concurrency = max_concurrency
        self.env: dict[str, str] = {}
        self._sandbox: Sandbox | None = None
        self._server: RuntimeApiServer | None = None

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
        self._server = RuntimeApiServer(sandbox, "")
        self.env = lambda_environment(
            self.base_env, self.directory, self.runtime_api, self.timeout, self.handler
        )
        if self.max_concurrency > 1:  # Lambda Managed Instances: so many at once
            self.env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.max_concurrency)
        sandbox.env = self.env
        sandbox.concurrency = self.max_concurrency
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
        once and runs it in the background (its failure logged), `DryRun` 204 without running.
        A streamed answer comes back as soon as it begins, with ``stream`` set: read it (or
        ``abandon`` it) before ``stop``. Thread-safe: ``max_concurrency`` run at once, the
        other callers wait their turn."""
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
        if result.stream is not None:  # nobody reads it: dropped as it comes, its end awaited
            result.stream.abandon()
            error = result.stream.wait_end()
            if error is not None:
                self.log.error(f"asynchronous invocation failed: {error.error_type}")
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
