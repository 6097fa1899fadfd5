"""The middleware onion: pure ordering logic, then the Pipeline with real executables."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sor.config.model import HookTimeouts, Middleware
from sor.errors import FunctionError, MiddlewareError, MiddlewareTimeout, SorError
from sor.logs import Log
from sor.middleware.hook import UNCHANGED, HookResult
from sor.middleware.pipeline import Pipeline, onion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sor.config.model import Hook

NODE = shutil.which("node")


# --- the pure onion ----------------------------------------------------------------------------


class Script:
    """Plays the middlewares: records each call and answers as told by ``plan``."""

    def __init__(self, names: list[str], plan: dict[str, Any] | None = None, **settings: Any):
        self.middlewares = [
            Middleware(name=n, path=Path("/x") / n, **settings.get(n, {})) for n in names
        ]
        self.plan = plan or {}
        self.calls: list[str] = []

    def call(self, index: int, hook: Hook, payload: Any) -> HookResult:
        key = f"{hook}:{self.middlewares[index].name}"
        self.calls.append(key)
        planned = self.plan.get(key)
        if isinstance(planned, SorError):
            raise planned
        if isinstance(planned, HookResult):
            return planned
        if hook == "error":
            return UNCHANGED
        return HookResult("replace", [*payload, key])

    def tolerated(self, mw: Middleware, hook: Hook, exc: MiddlewareError) -> None:
        self.calls.append(f"tolerated {hook}:{mw.name}")

    def run(self, handler: Any = None) -> Any:
        def default(payload: Any) -> Any:
            self.calls.append("handler")
            return [*payload, "handler"]

        return onion(self.middlewares, [], handler or default, self.call, self.tolerated)


def boom(message: str = "boom") -> MiddlewareError:
    return MiddlewareError(message)


def test_before_in_order_after_in_reverse() -> None:
    s = Script(["a", "b", "c"])
    assert s.run() == [
        "before:a",
        "before:b",
        "before:c",
        "handler",
        "after:c",
        "after:b",
        "after:a",
    ]
    assert s.calls == [
        "before:a",
        "before:b",
        "before:c",
        "handler",
        "after:c",
        "after:b",
        "after:a",
    ]


def test_no_middlewares_is_the_handler() -> None:
    assert Script([]).run() == ["handler"]


def test_early_answer_skips_the_rest_and_unwinds_the_outer_layers() -> None:
    s = Script(["a", "b", "c"], {"before:b": HookResult("respond", ["early"])})
    assert s.run() == ["early", "after:a"]
    assert s.calls == ["before:a", "before:b", "after:a"]


def test_handler_error_goes_through_error_hooks_in_reverse() -> None:
    s = Script(["a", "b"])

    def failing(payload: Any) -> Any:
        raise FunctionError({"errorType": "ValueError", "errorMessage": "bad"})

    with pytest.raises(FunctionError) as info:
        s.run(failing)
    assert info.value.payload() == {"errorType": "ValueError", "errorMessage": "bad"}
    assert s.calls == ["before:a", "before:b", "error:b", "error:a"]


def test_error_hook_replaces_the_error() -> None:
    replaced = {"errorType": "Custom", "errorMessage": "nicer", "stackTrace": []}
    s = Script(["a", "b"], {"error:b": HookResult("replace", replaced)})

    def failing(payload: Any) -> Any:
        raise MiddlewareTimeout("slow")

    with pytest.raises(SorError) as info:
        s.run(failing)
    assert info.value.payload() == replaced and info.value.error_type == "Custom"


def test_error_hook_answer_becomes_a_response_for_the_outer_layers() -> None:
    s = Script(["a", "b", "c"], {"error:b": HookResult("respond", ["500"])})

    def failing(payload: Any) -> Any:
        raise FunctionError({"errorType": "E", "errorMessage": "m"})

    assert s.run(failing) == ["500", "after:a"]
    assert s.calls == ["before:a", "before:b", "before:c", "error:c", "error:b", "after:a"]


def test_failing_before_hook_goes_to_the_error_hooks_of_outer_layers() -> None:
    err = boom("auth down")
    s = Script(["a", "b", "c"], {"before:b": err})
    with pytest.raises(MiddlewareError) as info:
        s.run()
    assert info.value is err
    assert s.calls == ["before:a", "before:b", "error:a"]


def test_failing_after_hook_goes_to_the_error_hooks_of_outer_layers() -> None:
    s = Script(["a", "b", "c"], {"after:b": boom("after broke")})
    with pytest.raises(MiddlewareError, match="after broke"):
        s.run()
    assert s.calls == [
        "before:a",
        "before:b",
        "before:c",
        "handler",
        "after:c",
        "after:b",
        "error:a",
    ]


def test_failing_error_hook_replaces_the_error_and_names_the_first() -> None:
    s = Script(["a", "b"], {"error:b": boom("handler of errors broke")})

    def failing(payload: Any) -> Any:
        raise FunctionError({"errorType": "KeyError", "errorMessage": "k"})

    with pytest.raises(MiddlewareError) as info:
        s.run(failing)
    assert "handler of errors broke" in info.value.message
    assert "while handling KeyError: k" in info.value.message
    assert s.calls[-2:] == ["error:b", "error:a"]


def test_on_error_continue_keeps_the_payload() -> None:
    s = Script(
        ["a", "b", "c"],
        {"before:b": boom(), "after:b": boom()},
        b={"on_error": "continue"},
    )
    assert s.run() == ["before:a", "before:c", "handler", "after:c", "after:a"]
    assert "tolerated before:b" in s.calls and "tolerated after:b" in s.calls
    assert not any(c.startswith("error:") for c in s.calls)


def test_on_error_continue_in_an_error_hook_keeps_the_error() -> None:
    s = Script(["a", "b"], {"error:b": boom()}, b={"on_error": "continue"})
    original = FunctionError({"errorType": "E", "errorMessage": "m"})

    def failing(payload: Any) -> Any:
        raise original

    with pytest.raises(FunctionError) as info:
        s.run(failing)
    assert info.value is original
    assert s.calls[-3:] == ["error:b", "tolerated error:b", "error:a"]


def test_hooks_subset() -> None:
    s = Script(["a", "b"], a={"hooks": ("after",)}, b={"hooks": ("before", "error")})
    assert s.run() == ["before:b", "handler", "after:a"]
    assert s.calls == ["before:b", "handler", "after:a"]


def test_early_answer_from_a_layer_without_an_after_hook() -> None:
    s = Script(
        ["a", "b", "c"],
        {"before:c": HookResult("respond", ["warm"])},
        b={"hooks": ("before", "error")},
    )
    assert s.run() == ["warm", "after:a"]
    assert s.calls == ["before:a", "before:b", "before:c", "after:a"]


# --- the Pipeline with real processes ----------------------------------------------------------

CONTEXT = {"aws_request_id": "req-9", "deadline_ms": 99, "function_name": "fn"}


def gone(pid: int, within: float = 3.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    end = time.monotonic() + within
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def recorder_py(path: Path, record: Path) -> Path:
    return write_exe(
        path,
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f: f.write('py ' + sys.argv[1] + '\\n')\n"
        "p = json.load(sys.stdin)\n"
        "if sys.argv[1] != 'error':\n"
        "    p['trail'].append('py:' + sys.argv[1])\n"
        "    print(json.dumps(p))\n",
    )


def recorder_sh(path: Path, record: Path) -> Path:
    return write_exe(path, f'#!/bin/sh\ncat > /dev/null\necho "sh $1" >> {record}\n')


def recorder_node(path: Path, record: Path) -> Path:
    return write_exe(
        path,
        "#!/usr/bin/env node\nconst fs = require('fs');\n"
        f"fs.appendFileSync({str(record)!r}, 'node ' + process.argv[2] + '\\n');\n"
        "const p = JSON.parse(fs.readFileSync(0, 'utf8'));\n"
        "if (process.argv[2] === 'error') { p.errorMessage += ' (seen by node)'; }\n"
        "else { p.trail.push('node:' + process.argv[2]); }\n"
        "process.stdout.write(JSON.stringify(p) + '\\n');\n",
    )


class Handler:
    def __init__(self, error: dict[str, Any] | None = None) -> None:
        self.calls: list[Any] = []
        self.error = error

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        if self.error is not None:
            raise FunctionError(self.error)
        return {"trail": [*payload["trail"], "handler"]}


def pipeline(*middlewares: Middleware) -> tuple[Pipeline, io.StringIO]:
    stream = io.StringIO()
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    return Pipeline(middlewares, log=Log(stream), env=env), stream


def run(
    p: Pipeline, handler: Any, payload: Any = None, budget: float = 10
) -> tuple[Any, dict[str, float]]:
    timings: dict[str, float] = {}
    now = time.monotonic()
    out = p.run(
        payload if payload is not None else {"trail": []},
        dict(CONTEXT),
        handler,
        now + budget,
        now + budget + 1,
        timings,
    )
    return out, timings


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_three_languages_before_in_order_after_in_reverse(tmp_path: Path) -> None:
    record = tmp_path / "record"
    p, _ = pipeline(
        Middleware(name="py", path=recorder_py(tmp_path / "py", record)),
        Middleware(name="sh", path=recorder_sh(tmp_path / "sh", record)),
        Middleware(name="node", path=recorder_node(tmp_path / "node", record)),
    )
    handler = Handler()
    result, timings = run(p, handler)
    assert handler.calls == [{"trail": ["py:before", "node:before"]}]
    assert result == {"trail": ["py:before", "node:before", "handler", "node:after", "py:after"]}
    assert record.read_text().split("\n")[:-1] == [
        "py before",
        "sh before",
        "node before",
        "node after",
        "sh after",
        "py after",
    ]
    assert set(timings) == {
        f"{h}:{n}" for h in ("before", "after") for n in ("py", "sh", "node")
    } | {"handler"}
    assert all(v >= 0 for v in timings.values())


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_handler_error_through_real_error_hooks(tmp_path: Path) -> None:
    record = tmp_path / "record"
    p, _ = pipeline(
        Middleware(name="py", path=recorder_py(tmp_path / "py", record)),
        Middleware(name="node", path=recorder_node(tmp_path / "node", record)),
    )
    error = {"errorType": "ValueError", "errorMessage": "bad input", "stackTrace": []}
    with pytest.raises(SorError) as info:
        run(p, Handler(error))
    assert info.value.payload() == {**error, "errorMessage": "bad input (seen by node)"}
    assert record.read_text().split() == [
        "py",
        "before",
        "node",
        "before",
        "node",
        "error",
        "py",
        "error",
    ]


def test_early_answer_from_sh_skips_the_handler(tmp_path: Path) -> None:
    record = tmp_path / "record"
    early = write_exe(
        tmp_path / "early",
        '#!/bin/sh\ncat >/dev/null\necho "early $1" >> ' + str(record) + "\n"
        'echo \'{"statusCode": 200, "body": "warm", "trail": []}\'\nexit 100\n',
    )
    p, _ = pipeline(
        Middleware(name="outer", path=recorder_py(tmp_path / "py", record)),
        Middleware(name="early", path=early),
        Middleware(name="inner", path=recorder_sh(tmp_path / "sh", record)),
    )
    handler = Handler()
    result, _ = run(p, handler)
    assert handler.calls == []
    assert result == {"statusCode": 200, "body": "warm", "trail": ["py:after"]}
    assert record.read_text().split("\n")[:-1] == ["py before", "early before", "py after"]


BROKEN = {
    "exit 1": ("#!/bin/sh\necho 'cannot reach the cache' >&2\nexit 1\n", "ended with exit code 1"),
    "not json": (
        "#!/usr/bin/env node\nprocess.stderr.write('cannot reach the cache\\n');\n"
        "process.stdout.write('OK then\\n');\n",
        "wrote output that is not JSON",
    ),
    "50 MB": (
        f"#!{sys.executable}\nimport sys\nprint('cannot reach the cache', file=sys.stderr)\n"
        "sys.stderr.flush()\nchunk = '[' + ' ' * (1 << 20)\n"
        "for _ in range(50): sys.stdout.write(chunk)\n",
        "wrote more than 8388608 bytes",
    ),
    "nested too deeply": (
        f"#!{sys.executable}\nimport sys\nprint('cannot reach the cache', file=sys.stderr)\n"
        "sys.stderr.flush()\nprint('[' * 100000 + ']' * 100000)\n",
        "wrote output that is not JSON (nested too deeply)",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_middleware_fails_the_invocation(tmp_path: Path, kind: str) -> None:
    if "node" in BROKEN[kind][0] and NODE is None:
        pytest.skip("node is not installed")
    text, what = BROKEN[kind]
    p, _ = pipeline(Middleware(name="cache", path=write_exe(tmp_path / "cache", text)))
    handler = Handler()
    began = time.monotonic()
    with pytest.raises(MiddlewareError) as info:
        run(p, handler)
    assert time.monotonic() - began < 5
    assert not isinstance(info.value, MiddlewareTimeout)
    assert handler.calls == []
    message = info.value.payload()["errorMessage"]
    assert message.startswith("middleware cache (before): " + what)
    assert message.endswith("stderr: cannot reach the cache")


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_continue_keeps_the_payload_and_logs(tmp_path: Path, kind: str) -> None:
    if "node" in BROKEN[kind][0] and NODE is None:
        pytest.skip("node is not installed")
    text, what = BROKEN[kind]
    bad = write_exe(tmp_path / "cache", text)
    p, log = pipeline(Middleware(name="cache", path=bad, on_error="continue", hooks=("before",)))
    handler = Handler()
    result, _ = run(p, handler, {"trail": ["x"]})
    assert handler.calls == [{"trail": ["x"]}]
    assert result == {"trail": ["x", "handler"]}
    logged = log.getvalue()
    assert "[cache] cannot reach the cache" in logged
    assert f"middleware cache (before): {what}" in logged and "on_error: continue" in logged
    assert "req-9" in logged


def test_exit_100_from_after_fails_through_the_outer_error_hooks(tmp_path: Path) -> None:
    record = tmp_path / "record"
    answering = write_exe(
        tmp_path / "answering",
        '#!/bin/sh\ncat >/dev/null\necho "answering $1" >> ' + str(record) + "\n"
        '[ "$1" = after ] || exit 0\necho \'{"statusCode": 418}\'\nexit 100\n',
    )
    p, _ = pipeline(
        Middleware(name="outer", path=recorder_py(tmp_path / "py", record)),
        Middleware(name="answering", path=answering),
    )
    with pytest.raises(MiddlewareError) as info:
        run(p, Handler())
    assert info.value.payload()["errorType"] == "Sor.MiddlewareError"
    assert info.value.message.startswith("middleware answering (after): ended with exit code 100")
    assert record.read_text().split("\n")[:-1] == [
        "py before",
        "answering before",
        "answering after",
        "py error",
    ]


def test_persistent_answer_nested_too_deeply_is_tolerated_by_continue(tmp_path: Path) -> None:
    deep = write_exe(
        tmp_path / "deep",
        f"#!{sys.executable}\nimport sys\n"
        "for line in sys.stdin: print('[' * 100000 + ']' * 100000, flush=True)\n",
    )
    mw = Middleware(name="deep", path=deep, mode="persistent", on_error="continue")
    p, log = pipeline(mw)
    p.start()
    try:
        result, _ = run(p, Handler(), {"trail": ["x"]})
    finally:
        p.close()
    assert result == {"trail": ["x", "handler"]}
    logged = log.getvalue()
    assert "middleware deep (before): answered with a line that is not JSON" in logged
    assert "middleware deep (after): answered with a line that is not JSON" in logged
    assert "on_error: continue" in logged


def test_timeout_with_a_grandchild_holding_stdout(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    slow = write_exe(tmp_path / "slow", f"#!/bin/sh\nsleep 30 &\necho $! > {pidfile}\nsleep 30\n")
    mw = Middleware(name="slow", path=slow, timeouts=HookTimeouts(before=0.3))
    p, _ = pipeline(mw)
    handler = Handler()
    began = time.monotonic()
    with pytest.raises(MiddlewareTimeout) as info:
        run(p, handler)
    assert time.monotonic() - began < 3
    assert "middleware slow (before): timed out" in info.value.message
    assert handler.calls == []
    assert gone(int(pidfile.read_text()))


def test_persistent_serves_a_thousand_calls_and_survives_a_kill(tmp_path: Path) -> None:
    server = write_exe(
        tmp_path / "pid",
        f"#!{sys.executable}\nimport json, os, sys\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'payload': {'trail': [os.getpid()]}}), flush=True)\n",
    )
    p, _ = pipeline(Middleware(name="pid", path=server, mode="persistent", hooks=("before",)))
    p.start()
    try:
        seen: list[int] = []
        for i in range(1000):
            if i == 500:
                os.kill(seen[-1], signal.SIGKILL)
                assert gone(seen[-1])
            handler = Handler()
            result, _ = run(p, handler)
            seen.append(handler.calls[0]["trail"][0])
            assert result == {"trail": [seen[-1], "handler"]}
    finally:
        p.close()
    assert len(set(seen[:500])) == 1 and len(set(seen[500:])) == 1
    assert seen[0] != seen[500]
    assert gone(seen[500])


def test_fail_reports_the_middleware_error(tmp_path: Path) -> None:
    bad = write_exe(tmp_path / "bad", "#!/bin/sh\necho 'token expired' >&2\nexit 1\n")
    p, _ = pipeline(Middleware(name="auth", path=bad, hooks=("before",)))
    handler = Handler()
    with pytest.raises(MiddlewareError) as info:
        run(p, handler)
    assert handler.calls == []
    payload = info.value.payload()
    assert payload["errorType"] == "Sor.MiddlewareError"
    assert "auth (before)" in payload["errorMessage"] and "token expired" in payload["errorMessage"]


def test_the_deadline_bounds_a_hook_with_a_longer_timeout(tmp_path: Path) -> None:
    slow = write_exe(tmp_path / "slow", "#!/bin/sh\nsleep 30\n")
    mw = Middleware(name="slow", path=slow, timeouts=HookTimeouts(before=20, after=20, error=20))
    p, _ = pipeline(mw)
    began = time.monotonic()
    with pytest.raises(MiddlewareTimeout, match=r"slow \(before\)"):
        run(p, Handler(), budget=0.3)
    assert time.monotonic() - began < 3


def test_persistent_middleware_in_a_pipeline(tmp_path: Path) -> None:
    server = write_exe(
        tmp_path / "stamp",
        f"#!{sys.executable}\nimport json, os, sys\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    p = m['payload']\n"
        "    if m['hook'] == 'error': print('{}', flush=True); continue\n"
        "    p['trail'].append(f\"{m['hook']}:{os.getpid()}:{m['context']['aws_request_id']}\")\n"
        "    print(json.dumps({'payload': p}), flush=True)\n",
    )
    p, _ = pipeline(Middleware(name="stamp", path=server, mode="persistent"))
    p.start()
    try:
        pid = p.runners[0].pid  # type: ignore[attr-defined]
        for _ in range(3):
            result, _ = run(p, Handler())
            assert result == {"trail": [f"before:{pid}:req-9", "handler", f"after:{pid}:req-9"]}
    finally:
        p.close()
    assert p.runners[0].pid is None  # type: ignore[attr-defined]
