"""The embedded emulator's Extensions API, and `sor run`'s shutdown path under it."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from sor.emulator.emulator import Emulator
from sor.emulator.extensions import MAX_EXTENSIONS, Extensions
from sor.http.client import HttpConnection
from sor.logs import Log
from sor.runtime.extension import Extension, ExtensionError


def test_registration_rules_are_lambdas_for_internal_extensions() -> None:
    ext = Extensions()
    status, identifier, _ = ext.register("a", b'{"events": []}', closed=False)
    assert status == 200 and ext.known(identifier)
    assert (
        ext.register("a", b'{"events": []}', closed=False)[1] == "Extension.InvalidExtensionState"
    )
    assert ext.register("b", b'{"events": ["INVOKE", "SHUTDOWN"]}', closed=False)[:2] == (
        403,
        "Extension.InvalidEventType",
    )
    assert ext.register("", b"{}", closed=False)[1] == "Extension.InvalidExtensionName"
    assert ext.register("c", b"[]", closed=False)[1] == "InvalidRequestFormat"
    assert ext.register("c", b"{}", closed=True)[1] == "Extension.RegistrationClosed"
    for i in range(MAX_EXTENSIONS - 1):
        assert ext.register(f"n{i}", b"", closed=False)[0] == 200
    assert ext.register("one-too-many", b"", closed=False)[1] == "Extension.TooManyExtensions"
    assert not ext.known("not-an-id")


HANDLER = textwrap.dedent(
    """
    import os, signal, sys

    def on_term(signum, frame):
        open(os.environ["MARKS"] + "/handler-term", "w").close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)

    def handler(event, context):
        return {"tenant": context.tenant_id}
    """
)
HOOK = '#!/bin/sh\ncat > "$MARKS/hook-$1.json"\n'


def test_sor_run_registers_under_the_emulator_and_shuts_down_when_it_stops(
    tmp_path: Path,
) -> None:
    fn, marks = tmp_path / "fn", tmp_path / "marks"
    (fn / "middlewares").mkdir(parents=True)
    marks.mkdir()
    (fn / "app.py").write_text(HANDLER)
    (fn / "middlewares" / "bye").write_text(HOOK)
    (fn / "middlewares" / "bye").chmod(0o755)
    (fn / "sor.yml").write_text(
        "version: 1\nruntime: {handler: app.handler}\n"
        "middlewares: [{name: bye, hooks: [shutdown]}]\n"
    )
    logs = io.StringIO()
    env = {"PATH": os.environ["PATH"], "MARKS": str(marks), "SOR_LAYER_DIR": str(fn / "none")}
    emulator = Emulator(fn, 5.0, env, [sys.executable, "-m", "sor", "run"], Log(logs))
    emulator.start()
    try:
        result = emulator.invoke(b"{}", tenant_id="tenant-1")
        assert result.status == 200, result
        assert json.loads(result.body) == {"tenant": "tenant-1"}
        with pytest.raises(ExtensionError) as caught:
            Extension(emulator.runtime_api, "late").register()
        assert "Extension.RegistrationClosed" in caught.value.message
        conn = HttpConnection(emulator.runtime_api)
        answer = conn.request(
            "GET", "/2020-01-01/extension/event/next", {"Lambda-Extension-Identifier": "x"}
        )
        conn.close()
        assert answer.status == 403
        assert json.loads(answer.body)["errorType"] == "Extension.UnknownExtensionIdentifier"
    finally:
        emulator.stop()  # SIGTERM to the bootstrap, as Lambda's shutdown
    assert "refused the registration" not in logs.getvalue()
    assert list(json.loads((marks / "hook-shutdown.json").read_text())) == ["deadline_ms"]
    assert (marks / "handler-term").exists()
