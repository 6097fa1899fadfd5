"""`sor run` serving several invocations at once (AWS_LAMBDA_MAX_CONCURRENCY, Managed Instances),
as a real process against the suite's Runtime API server, which allows concurrent `GET next`."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runtime_api_server import RuntimeApiServer

from sor.config.model import RuntimeSettings
from sor.logs import Log
from sor.runtime.slots import slot_count

HANDLERS = textwrap.dedent(
    """
    import os, time

    def work(event, context):
        if event.get("die"):
            os._exit(3)
        time.sleep(event.get("sleep", 0))
        return {
            "n": event.get("n"),
            "request_id": context.aws_request_id,
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "pid": os.getpid(),
        }
    """
)


class Sor:
    """`sor run` in a process of its own."""

    def __init__(self, root: Path, server: RuntimeApiServer, **env: str) -> None:
        (root / "handlers.py").write_text(HANDLERS)
        full = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "SOR_LAYER_DIR": str(root / "no-layer"),
            "_HANDLER": "handlers.work",
            **env,
        }
        full.pop("SOR_CONFIG", None)
        self.stderr = root / "sor.stderr"
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sor", "run"], cwd=root, env=full, stderr=err
            )

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    server = RuntimeApiServer()
    started: list[Sor] = []

    def start(**env: str) -> tuple[Sor, RuntimeApiServer]:
        started.append(Sor(tmp_path, server, **env))
        return started[-1], server

    yield start
    for s in started:
        assert s.stop() == 0, s.stderr.read_text()
    server.close()


def answers(server: RuntimeApiServer, events: list[Any], timeout: float = 10.0) -> list[Any]:
    pending = [server.submit(event, timeout=timeout) for event in events]
    return [server.wait_answer(p, timeout + 10) for p in pending]


def test_four_one_second_handlers_are_answered_together(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])  # init is over
    began = time.monotonic()
    got = answers(server, [{"n": i, "sleep": 1} for i in range(4)])
    took = time.monotonic() - began
    assert [a.kind for a in got] == ["response"] * 4
    assert sorted(a.json()["n"] for a in got) == [0, 1, 2, 3]
    assert len({a.json()["pid"] for a in got}) == 4  # a Python adapter process per slot
    assert took < 3.5, f"4 one-second handlers took {took:.1f} s: they did not run together"


def test_one_past_its_deadline_stops_alone(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    pending = [server.submit({"n": 9, "sleep": 30}, timeout=2.0)]
    pending += [server.submit({"n": i, "sleep": 1}, timeout=10.0) for i in range(3)]
    got = [server.wait_answer(p, 20) for p in pending]
    assert got[0].kind == "error" and got[0].json()["errorType"] == "Sor.Timeout"
    assert [a.kind for a in got[1:]] == ["response"] * 3
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4


def test_a_crash_fails_only_its_own_invocation(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    got = answers(server, [{"die": True}, *({"n": i, "sleep": 0.5} for i in range(3))])
    assert got[0].kind == "error" and got[0].json()["errorType"] == "Sor.RuntimeExited"
    assert [a.kind for a in got[1:]] == ["response"] * 3


def test_runtime_concurrency_caps_the_variable(run: Any, tmp_path: Path) -> None:
    (tmp_path / "sor.yml").write_text(
        "version: 1\nruntime: {handler: handlers.work, concurrency: 2}\n"
    )
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    got = answers(server, [{"n": i, "sleep": 0.3} for i in range(8)])
    assert len({a.json()["pid"] for a in got}) == 2
    assert "concurrency=2" in s.stderr.read_text()


def test_without_the_variable_one_at_a_time(run: Any) -> None:
    s, server = run()
    got = answers(server, [{"n": i} for i in range(4)])
    assert len({a.json()["pid"] for a in got}) == 1
    assert "concurrency=" not in s.stderr.read_text()


def test_two_hundred_invocations_eight_at_a_time_never_cross(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="8")
    pending = [server.submit({"n": i, "sleep": 0.01}, timeout=30) for i in range(200)]
    for i, p in enumerate(pending):
        answer = server.wait_answer(p, 60)
        assert answer.kind == "response"
        got = answer.json()
        assert got["n"] == i
        assert got["request_id"] == p.request_id
        assert got["trace"] == p.headers["Lambda-Runtime-Trace-Id"]


@pytest.mark.parametrize(
    ("value", "cap", "slots"),
    [("", "auto", 1), ("4", "auto", 4), ("4", 2, 2), ("1", "auto", 1), ("x", "auto", 1)],
)
def test_slot_count(value: str, cap: Any, slots: int) -> None:
    log = io.StringIO()
    env = {"AWS_LAMBDA_MAX_CONCURRENCY": value} if value else {}
    assert slot_count(env, RuntimeSettings(concurrency=cap), Log(log)) == slots
    assert ("ignored" in log.getvalue()) == (value == "x")
