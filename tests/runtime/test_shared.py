"""A language runtime process shared by concurrent invocations (sor.runtime.shared): an exec
adapter whose `ready` says `"concurrency":2`, a small Python script run by `sor run` against the
suite's Runtime API server, which allows concurrent `GET next`."""

from __future__ import annotations

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

from sor.runtime.slots import process_of_slots

# Runs each invoke in a thread of its own; says how many it takes at once in its `ready`.
ADAPTER = textwrap.dedent(
    """
    import json, os, sys, threading, time

    out = os.fdopen(4, "wb", buffering=0)
    lock = threading.Lock()

    def send(message):
        with lock:
            out.write((json.dumps(message) + "\\n").encode())

    def run(message):
        event, ctx = message["event"], message["context"]
        if event.get("die"):
            time.sleep(event.get("sleep", 0))
            os._exit(3)
        if event.get("forge"):  # another invocation's id without its seal: never its answer
            send({"type": "result", "id": event["forge"], "seal": "0" * 32, "result": "forged"})
        if event.get("garbage"):
            send({"type": "nonsense", "id": message["id"], "seal": message["seal"]})
            return
        time.sleep(event.get("sleep", 0))
        result = {
            "n": event.get("n"),
            "pid": os.getpid(),
            "request_id": ctx["aws_request_id"],
            "trace": ctx.get("trace_id"),
        }
        send({"type": "result", "id": message["id"], "seal": message["seal"], "result": result})

    send({"type": "ready", "seal": True, "concurrency": int(os.environ["CONCURRENCY"])})
    for line in os.fdopen(3, "rb"):
        threading.Thread(target=run, args=(json.loads(line),), daemon=True).start()
    """
)


class Sor:
    """`sor run` in a process of its own, its function an exec adapter."""

    def __init__(self, root: Path, server: RuntimeApiServer, **env: str) -> None:
        (root / "adapter.py").write_text(ADAPTER)
        (root / "sor.yml").write_text(
            f"version: 1\nruntime:\n  language: exec\n  command: [{sys.executable!r}, adapter.py]\n"
        )
        full = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "CONCURRENCY": "2",
            **env,
        }
        full.pop("SOR_CONFIG", None)
        full.pop("_HANDLER", None)
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


def pids(got: list[Any]) -> set[int]:
    return {a.json()["pid"] for a in got}


def test_two_per_process_four_slots_two_processes(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    began = time.monotonic()
    got = answers(server, [{"n": i, "sleep": 1} for i in range(4)])
    took = time.monotonic() - began
    assert [a.kind for a in got] == ["response"] * 4
    assert sorted(a.json()["n"] for a in got) == [0, 1, 2, 3]
    assert len(pids(got)) == 2
    assert took < 3.0, f"4 one-second handlers on 2 shared processes took {took:.1f} s"
    assert "processes=2" in s.stderr.read_text()


def test_one_past_its_deadline_retires_its_process_only(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    before = pids(answers(server, [{"n": i, "sleep": 0.5} for i in range(4)]))
    pending = [server.submit({"n": 9, "sleep": 30}, timeout=2.0)]
    pending += [server.submit({"n": i, "sleep": 1}, timeout=10.0) for i in range(3)]
    got = [server.wait_answer(p, 20) for p in pending]
    assert got[0].kind == "error" and got[0].json()["errorType"] == "Sor.Timeout"
    assert "retired" in got[0].json()["errorMessage"]
    assert [a.kind for a in got[1:]] == ["response"] * 3  # its process-mate too
    again = answers(server, [{"n": i, "sleep": 0.5} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4
    after = pids(again)
    assert len(after) == 2 and len(after & before) == 1  # one process was replaced
    assert "is retired" in s.stderr.read_text()


def test_a_crash_fails_the_invocations_of_its_process_only(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    # Two slots to a process: the crash takes its process-mate, not the other process's two.
    got = answers(server, [{"die": True, "sleep": 0.5}, *({"n": i, "sleep": 1} for i in range(3))])
    kinds = sorted(a.kind for a in got)
    failed = [a for a in got if a.kind == "error"]
    assert kinds == ["error", "error", "response", "response"], [a.body for a in got]
    for a in failed:
        assert a.json()["errorType"] == "Sor.RuntimeExited"
        assert "exited while running the handler with exit code 3" in a.json()["errorMessage"]
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4


def test_a_forged_answer_is_skipped_and_a_broken_one_fails_its_process(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="2")
    answers(server, [{"n": 0}])
    victim = server.submit({"n": 1, "sleep": 1}, timeout=10)
    time.sleep(0.3)
    forger = server.submit({"n": 2, "forge": victim.request_id}, timeout=10)
    assert server.wait_answer(victim, 20).json()["n"] == 1  # not "forged"
    assert server.wait_answer(forger, 20).json()["n"] == 2
    assert "ignored an answer" in s.stderr.read_text()
    broken = answers(server, [{"garbage": True}])[0]
    assert broken.json()["errorType"] == "Sor.RuntimeExited"
    assert "broke the protocol" in broken.json()["errorMessage"]
    assert [a.kind for a in answers(server, [{"n": 3}, {"n": 4}])] == ["response"] * 2


def test_two_hundred_invocations_eight_at_a_time_never_cross(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="8", CONCURRENCY="4")
    pending = [server.submit({"n": i, "sleep": 0.01}, timeout=30) for i in range(200)]
    seen: set[int] = set()
    for i, p in enumerate(pending):
        answer = server.wait_answer(p, 60)
        assert answer.kind == "response"
        got = answer.json()
        assert got["n"] == i
        assert got["request_id"] == p.request_id
        assert got["trace"] == p.headers["Lambda-Runtime-Trace-Id"]
        seen.add(got["pid"])
    assert len(seen) == 2
    assert len({p.request_id for p in pending}) == 200
    assert len({p.headers["Lambda-Runtime-Trace-Id"] for p in pending}) == 200


def test_an_adapter_that_takes_one_at_a_time_gets_a_process_per_slot(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="3", CONCURRENCY="1")
    got = answers(server, [{"n": i, "sleep": 0.5} for i in range(6)])
    assert [a.kind for a in got] == ["response"] * 6
    assert len(pids(got)) == 3


@pytest.mark.parametrize(
    ("slots", "per", "plan"),
    [(4, 2, [0, 0, 1, 1]), (5, 2, [0, 0, 1, 1, 2]), (3, 8, [0, 0, 0]), (2, 1, [0, 1])],
)
def test_process_of_slots(slots: int, per: int, plan: list[int]) -> None:
    assert process_of_slots(slots, per) == plan
