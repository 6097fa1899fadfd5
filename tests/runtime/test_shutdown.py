"""Shutdown: sor as an internal extension, its `shutdown` hooks and the runtime's SIGTERM.

Against the suite's Runtime API server, which serves the Extensions API as Lambda does for an
extension registered from the runtime process (SHUTDOWN refused with 403, registration closed
after the first `invocation/next`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.runtime_api_server import RuntimeApiServer

from sor.http.client import HttpConnection
from sor.runtime.extension import Extension, ExtensionError
from sor.runtime.shutdown import SHUTDOWN_TIME, deadlines

HANDLER = textwrap.dedent(
    """
    import os, signal, sys, time

    def on_term(signum, frame):
        with open(os.environ["MARKS"] + f"/handler-term-{os.getpid()}", "w") as f:
            f.write(repr(time.time()))
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)

    def echo(event, context):
        return {"pid": os.getpid(), "tenant": context.tenant_id}
    """
)

EXEC_HOOK = """#!/bin/sh
# exec mode: `PATH shutdown`, {"deadline_ms": N} on stdin
cat > "$MARKS/hook-$1.json"
echo "$SOR_HOOK $SOR_DEADLINE_MS $SOR_FUNCTION_NAME" > "$MARKS/hook-env"
date +%s.%N > "$MARKS/hook-time"
echo '{"ignored": true}'
"""

PERSISTENT_HOOK = f"""#!{sys.executable}
import json, os, sys, time
for line in sys.stdin:
    call = json.loads(line)
    if call["hook"] == "shutdown":
        with open(os.environ["MARKS"] + "/persistent-shutdown.json", "w") as f:
            json.dump({{**call, "at": time.time()}}, f)
    print("{{}}", flush=True)
"""


class SorRun:
    """`sor run` as a real process, with `-X importtime` so its imports can be checked."""

    def __init__(
        self, root: Path, marks: Path, server: RuntimeApiServer | None = None, **extra: str
    ) -> None:
        self.server = server or RuntimeApiServer()
        env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": self.server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "SOR_LAYER_DIR": str(root / "no-layer"),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "MARKS": str(marks),
            "_HANDLER": "app.echo",
            **extra,
        }
        env.pop("SOR_CONFIG", None)
        self.stderr_path = root / "sor.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-X", "importtime", "-m", "sor", "run"],
                cwd=root,
                env=env,
                stderr=err,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def terminate(self) -> tuple[float, int]:
        """SIGTERM now; (epoch time it was sent, exit status)."""
        sent = time.time()
        self.proc.send_signal(signal.SIGTERM)
        return sent, self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.server.close()


@pytest.fixture
def function(tmp_path: Path) -> Iterator[tuple[Path, Path, list[SorRun]]]:
    root = tmp_path / "fn"
    marks = tmp_path / "marks"
    (root / "middlewares").mkdir(parents=True)
    marks.mkdir()
    (root / "app.py").write_text(HANDLER)
    for name, text in (("bye", EXEC_HOOK), ("keeper", PERSISTENT_HOOK)):
        path = root / "middlewares" / name
        path.write_text(text)
        path.chmod(0o755)
    started: list[SorRun] = []
    yield root, marks, started
    for s in started:
        s.close()


def start(
    function: tuple[Path, Path, list[SorRun]],
    config: str,
    server: RuntimeApiServer | None = None,
    **env: str,
) -> SorRun:
    root, marks, started = function
    (root / "sor.yml").write_text(textwrap.dedent(config))
    s = SorRun(root, marks, server, **env)
    started.append(s)
    return s


def handler_terms(marks: Path) -> dict[int, float]:
    """pid -> when each language runtime's SIGTERM handler ran."""
    return {
        int(p.name.rsplit("-", 1)[1]): float(p.read_text()) for p in marks.glob("handler-term-*")
    }


def test_registered_during_init_then_hook_and_handler_run_at_sigterm_in_time(
    function: tuple[Path, Path, list[SorRun]],
) -> None:
    _, marks, _ = function
    s = start(
        function,
        """
        version: 1
        runtime: {handler: app.echo}
        middlewares:
          - {name: bye, hooks: [before, shutdown]}
        shutdown: {signal: true}
        """,
    )
    assert s.server.invoke({}).kind == "response"
    server = s.server
    assert [(name, events) for name, events, _ in server.registrations] == [("sor-shutdown", [])]
    assert server.first_next_at is not None
    assert server.registrations[0][2] < server.first_next_at  # during init, as Lambda needs
    assert len(server.waiting) == 1  # its event/next is held open
    assert not (marks / "hook-shutdown.json").exists()  # not an invocation hook
    sent, code = s.terminate()
    assert code == 0
    hook_input = json.loads((marks / "hook-shutdown.json").read_text())
    assert list(hook_input) == ["deadline_ms"]
    assert sent * 1000 < hook_input["deadline_ms"] <= (sent + SHUTDOWN_TIME) * 1000
    hook, deadline_ms, name = (marks / "hook-env").read_text().split()
    assert (hook, int(deadline_ms), name) == ("shutdown", hook_input["deadline_ms"], "fn")
    (handler_ran,) = handler_terms(marks).values()
    hook_ran = float((marks / "hook-time").read_text())
    # Lambda SIGKILLs ~500 ms after its SIGTERM: both must be done inside that time.
    assert sent < hook_ran <= handler_ran < sent + SHUTDOWN_TIME
    assert "sor.runtime.shutdown" in s.stderr  # -X importtime: configured, so imported
    assert "Traceback" not in s.stderr


def test_a_persistent_shutdown_hook_alone_registers_and_gets_a_shutdown_call(
    function: tuple[Path, Path, list[SorRun]],
) -> None:
    _, marks, _ = function
    s = start(
        function,
        """
        version: 1
        runtime: {handler: app.echo}
        middlewares:
          - {name: keeper, mode: persistent, hooks: [shutdown]}
        """,
    )
    assert s.server.invoke({}).kind == "response"
    assert [name for name, _, _ in s.server.registrations] == ["sor-shutdown"]
    sent, code = s.terminate()
    assert code == 0
    call = json.loads((marks / "persistent-shutdown.json").read_text())
    assert call["hook"] == "shutdown"
    assert call["payload"] == {"deadline_ms": call["context"]["deadline_ms"]}
    assert sent < call["at"] < sent + SHUTDOWN_TIME
    assert len(handler_terms(marks)) == 1


def test_nothing_is_registered_or_imported_without_the_settings(
    function: tuple[Path, Path, list[SorRun]],
) -> None:
    _, marks, _ = function
    s = start(
        function,
        """
        version: 1
        runtime: {handler: app.echo}
        middlewares:
          - {name: bye}
        """,
    )
    assert s.server.invoke({}).kind == "response"
    assert s.server.registrations == [] and s.server.waiting == []
    _, code = s.terminate()
    assert code == 0  # SIGTERM still stops sor cleanly
    assert not (marks / "hook-shutdown.json").exists()
    assert len(handler_terms(marks)) == 1  # the runtime still gets its SIGTERM
    assert "sor.runtime.shutdown" not in s.stderr and "sor.runtime.extension" not in s.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in s.stderr.splitlines() if "|" in line}
    assert "sor.runtime.loop" in imported  # -X importtime did list the imports
    assert "requests" not in imported  # the client side's library, never `sor run`'s


def test_every_runtime_of_managed_instances_gets_sigterm_in_time(
    function: tuple[Path, Path, list[SorRun]],
) -> None:
    _, marks, _ = function
    config = "version: 1\nruntime: {handler: app.echo}\nshutdown: {signal: true}\n"
    s = start(function, config, AWS_LAMBDA_MAX_CONCURRENCY="3")
    pids = {s.server.invoke({}).json()["pid"] for _ in range(6)}
    assert len(s.server.registrations) == 1  # one registration for the whole environment
    sent, code = s.terminate()
    assert code == 0
    terms = handler_terms(marks)
    assert len(terms) == 3 and pids <= set(terms)  # each adapter, the ones that served included
    assert all(sent < when < sent + SHUTDOWN_TIME for when in terms.values())


def test_a_refused_registration_is_logged_and_sor_still_serves(
    function: tuple[Path, Path, list[SorRun]],
) -> None:
    server = RuntimeApiServer()
    Extension(server.address).register()  # sor's name is taken: its registration is refused
    config = "version: 1\nruntime: {handler: app.echo}\nshutdown: {signal: true}\n"
    s = start(function, config, server)
    assert s.server.invoke({}).kind == "response"
    assert [name for name, _, _ in s.server.registrations] == ["sor-shutdown"]  # only the first
    assert s.terminate()[1] == 0
    assert (
        "the Extensions API refused the registration: HTTP 403 Extension.InvalidExtensionState"
        in s.stderr
    )
    assert "Lambda will not send SIGTERM at shutdown" in s.stderr
    late = Extension(s.server.address, "late")
    with pytest.raises(ExtensionError) as caught:
        late.register()  # after the runtime's first invocation/next
    assert "Extension.RegistrationClosed" in caught.value.message


def test_the_extensions_api_refuses_shutdown_to_internal_extensions() -> None:
    """What sor relies on, as Lambda answers it: the suite's server keeps to it."""
    server = RuntimeApiServer()
    try:
        conn = HttpConnection(server.address)
        answer = conn.request(
            "POST",
            "/2020-01-01/extension/register",
            {"Lambda-Extension-Name": "greedy"},
            b'{"events":["SHUTDOWN"]}',
        )
        conn.close()
        assert answer.status == 403
        assert json.loads(answer.body)["errorType"] == "Extension.InvalidEventType"
        ext = Extension(server.address)
        assert ext.register() == ext.identifier
        with pytest.raises(ExtensionError) as caught:
            Extension(server.address).register()  # the same name twice
        assert "Extension.InvalidExtensionState" in caught.value.message
    finally:
        server.close()


def test_unreachable_extensions_api_is_an_extension_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        with pytest.raises(ExtensionError) as caught:
            Extension(address).register()
    assert "cannot register" in caught.value.message


def test_deadlines_keep_inside_lambdas_time() -> None:
    hooks_end, runtime_end = deadlines(100.0)
    assert 100.0 < hooks_end < runtime_end < 100.0 + SHUTDOWN_TIME
