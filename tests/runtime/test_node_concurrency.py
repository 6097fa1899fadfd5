"""Node running concurrent invocations in one process (runtimes/node/concurrency.js): `sor run`
with AWS_LAMBDA_MAX_CONCURRENCY against the suite's Runtime API server, which allows concurrent
`GET next`, and a real Node adapter whose `ready` says how many it takes at once."""

from __future__ import annotations

import json
import os
import shutil
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

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")

HANDLERS = textwrap.dedent(
    """
    const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
    exports.work = async (event, context) => {
      if (event.die) {
        await sleep(event.sleep || 0);
        process.exit(3);
      }
      if (event.throw) setTimeout(() => { throw new Error('boom'); }, 300);
      console.log(`working ${event.n}`);
      await sleep(event.sleep || 0);
      console.log(`done ${event.n}`);
      return {
        n: event.n,
        request_id: context.awsRequestId,
        global_id: globalThis[Symbol.for('aws.lambda.runtime.requestId')],
        store_id: awslambda.InvokeStore.getRequestId(),
        trace: awslambda.InvokeStore.getXRayTraceId() ?? null,
        env_trace: process.env._X_AMZN_TRACE_ID ?? null,
        pid: process.pid,
      };
    };
    """
)

CONFIG = "version: 1\nruntime: {language: node, handler: handlers.work}\n"


class Sor:
    """`sor run` in a process of its own, its stdout (the function's logs) in a file."""

    def __init__(self, root: Path, server: RuntimeApiServer, config: str, **env: str) -> None:
        (root / "handlers.js").write_text(HANDLERS)
        (root / "sor.yml").write_text(CONFIG + config)
        full = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "SOR_LAYER_DIR": str(root / "no-layer"),
            **env,
        }
        for name in ("SOR_CONFIG", "_HANDLER", "AWS_LAMBDA_LOG_FORMAT", "SOR_NODE_CONCURRENCY"):
            if name not in env:
                full.pop(name, None)
        self.stderr = root / "sor.stderr"
        self.stdout = root / "sor.stdout"
        with self.stderr.open("wb") as err, self.stdout.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sor", "run"], cwd=root, env=full, stderr=err, stdout=out
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

    def start(config: str = "", **env: str) -> tuple[Sor, RuntimeApiServer]:
        started.append(Sor(tmp_path, server, config, **env))
        return started[-1], server

    yield start
    for s in started:
        assert s.stop() == 0, s.stderr.read_text()
    server.close()


def answers(server: RuntimeApiServer, events: list[Any], timeout: float = 10.0) -> list[Any]:
    pending = [server.submit(event, timeout=timeout) for event in events]
    return [server.wait_answer(p, timeout + 10) for p in pending]


def four_together(server: RuntimeApiServer) -> tuple[list[Any], float]:
    answers(server, [{"n": 0}])  # init is over
    began = time.monotonic()
    got = answers(server, [{"n": i, "sleep": 1} for i in range(4)])
    return got, time.monotonic() - began


def test_four_one_second_handlers_in_one_node_process(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    got, took = four_together(server)
    assert [a.kind for a in got] == ["response"] * 4, [a.body for a in got]
    assert sorted(a.json()["n"] for a in got) == [0, 1, 2, 3]
    assert len({a.json()["pid"] for a in got}) == 1  # one Node process ran them all
    assert took < 3.0, f"4 one-second handlers took {took:.1f} s: they did not run together"
    assert "processes=1" in s.stderr.read_text()


def test_sor_node_concurrency_1_runs_a_process_per_slot(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4", SOR_NODE_CONCURRENCY="1")
    got, took = four_together(server)
    assert [a.kind for a in got] == ["response"] * 4
    assert len({a.json()["pid"] for a in got}) == 4
    assert took < 3.0, f"4 one-second handlers took {took:.1f} s: they did not run together"
    # Each process serves one invocation at a time: the trace id is in its environment again.
    assert all(a.json()["env_trace"] == a.json()["trace"] for a in got)
    assert "processes=4" in s.stderr.read_text()


def test_one_past_its_deadline_gets_a_timeout_the_others_succeed(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    first = answers(server, [{"n": 0}])[0].json()["pid"]
    pending = [server.submit({"n": 9, "sleep": 30}, timeout=2.0)]
    pending += [server.submit({"n": i, "sleep": 1}, timeout=10.0) for i in range(3)]
    began = time.monotonic()
    late = server.wait_answer(pending[0], 20)
    assert time.monotonic() - began < 2.0 + 3.0  # before its deadline, under load too
    assert late.kind == "error" and late.json()["errorType"] == "Sor.Timeout"
    got = [server.wait_answer(p, 20) for p in pending[1:]]
    assert [a.kind for a in got] == ["response"] * 3, [a.body for a in got]
    assert {a.json()["pid"] for a in got} == {first}  # they finished in the retired process
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4
    assert len({a.json()["pid"] for a in again} - {first}) == 1  # in its replacement


def test_a_crash_fails_the_invocations_of_that_process_and_the_next_are_served(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    got = answers(server, [{"die": True, "sleep": 0.3}, *({"n": i, "sleep": 2} for i in range(3))])
    assert [a.kind for a in got] == ["error"] * 4  # all four shared the process that died
    assert {a.json()["errorType"] for a in got} == {"Sor.RuntimeExited"}
    assert all("exit code 3" in a.json()["errorMessage"] for a in got)
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4


def test_an_uncaught_exception_fails_every_invocation_running_with_it(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    answers(server, [{"n": 0}])
    got = answers(server, [{"throw": True, "sleep": 5}, *({"n": i, "sleep": 5} for i in range(3))])
    assert [a.kind for a in got] == ["error"] * 4, [a.body for a in got]
    assert [(a.json()["errorType"], a.json()["errorMessage"]) for a in got] == [
        ("Error", "boom")
    ] * 4
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4, [a.body for a in again]


def test_a_crash_with_a_process_per_slot_fails_its_own_invocation_only(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4", SOR_NODE_CONCURRENCY="2")
    answers(server, [{"n": 0}])
    got = answers(server, [{"die": True, "sleep": 0.3}, *({"n": i, "sleep": 1} for i in range(3))])
    assert sorted(a.kind for a in got) == ["error", "error", "response", "response"]
    again = answers(server, [{"n": i, "sleep": 0.2} for i in range(4)])
    assert [a.kind for a in again] == ["response"] * 4


def test_console_lines_name_their_own_request_id(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4")
    pending = [server.submit({"n": i, "sleep": 0.5}, timeout=10) for i in range(8)]
    got = {p.request_id: server.wait_answer(p, 20).json() for p in pending}
    assert s.stop() == 0
    lines = [line.split("\t") for line in s.stdout.read_text().splitlines() if "\t" in line]
    for request_id, answer in got.items():
        n = answer["n"]
        mine = [fields for fields in lines if fields[3] in (f"working {n}", f"done {n}")]
        assert [fields[1] for fields in mine] == [request_id, request_id], mine
        assert answer["global_id"] == answer["store_id"] == request_id


def test_json_log_records_name_their_own_request_id(run: Any) -> None:
    s, server = run(AWS_LAMBDA_MAX_CONCURRENCY="4", AWS_LAMBDA_LOG_FORMAT="JSON")
    pending = [server.submit({"n": i, "sleep": 0.5}, timeout=10) for i in range(4)]
    got = {server.wait_answer(p, 20).json()["n"]: p.request_id for p in pending}
    assert s.stop() == 0
    records = [json.loads(line) for line in s.stdout.read_text().splitlines() if line]
    working = {r["message"]: r["requestId"] for r in records if "message" in r}
    assert {n: working[f"working {n}"] for n in got} == got
    assert {n: working[f"done {n}"] for n in got} == got


def test_two_hundred_invocations_eight_at_a_time_never_cross(run: Any) -> None:
    _, server = run(AWS_LAMBDA_MAX_CONCURRENCY="8")
    pending = [server.submit({"n": i, "sleep": 0.01}, timeout=30) for i in range(200)]
    for i, p in enumerate(pending):
        answer = server.wait_answer(p, 60)
        assert answer.kind == "response", answer.body
        got = answer.json()
        assert got["n"] == i
        assert got["request_id"] == got["global_id"] == got["store_id"] == p.request_id
        assert got["trace"] == p.headers["Lambda-Runtime-Trace-Id"]
        assert got["env_trace"] is None  # one variable cannot hold 8 trace ids
    assert len({p.request_id for p in pending}) == 200
    assert len({p.headers["Lambda-Runtime-Trace-Id"] for p in pending}) == 200


def test_without_the_variable_one_at_a_time_as_before(run: Any) -> None:
    s, server = run()
    got = answers(server, [{"n": i} for i in range(3)])
    assert len({a.json()["pid"] for a in got}) == 1
    assert all(a.json()["env_trace"] == a.json()["trace"] for a in got)
    assert "concurrency=" not in s.stderr.read_text()


# A persistent middleware that notes, for each `before` call, whether sor wrote another call to
# it while it was serving this one (stdin readable before its answer).
KEEPER = textwrap.dedent(
    """\
    #!{python}
    import json, os, select, sys, time

    log = open(sys.argv[0] + ".log", "a")
    for line in sys.stdin:
        time.sleep(0.3)
        busy = bool(select.select([sys.stdin], [], [], 0)[0])
        log.write(json.dumps({{"pid": os.getpid(), "overlap": busy}}) + "\\n")
        log.flush()
        print("{{}}", flush=True)
    """
)


def test_a_persistent_middleware_never_serves_two_calls_at_once(run: Any, tmp_path: Path) -> None:
    keeper = tmp_path / "keeper"
    keeper.write_text(KEEPER.format(python=sys.executable))
    keeper.chmod(0o755)
    config = (
        "middlewares:\n  - {name: keeper, path: ./keeper, mode: persistent, hooks: [before],"
        " timeout: 5s}\n"
    )
    _, server = run(config, AWS_LAMBDA_MAX_CONCURRENCY="4")
    got = answers(server, [{"n": i, "sleep": 0.5} for i in range(12)])
    assert [a.kind for a in got] == ["response"] * 12, [a.body for a in got]
    assert len({a.json()["pid"] for a in got}) == 1  # the handlers share one Node process
    calls = [json.loads(line) for line in (tmp_path / "keeper.log").read_text().splitlines()]
    assert len(calls) == 12
    assert len({c["pid"] for c in calls}) == 4  # a middleware process per slot
    assert not any(c["overlap"] for c in calls)
