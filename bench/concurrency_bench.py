"""Throughput of a handler that waits on I/O (it sleeps 75 ms) at N concurrent invocations, with
`AWS_LAMBDA_MAX_CONCURRENCY=N`: `sor run` against awslambdaric 4.x, which reads the same variable
and forks N workers, and the memory each slot costs (PSS and RSS of the whole process tree over
N). Both run against the suite's Runtime API server (tests/support), which serves concurrent
`next` long polls as Lambda Managed Instances do; the embedded emulator serves one at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from bench import procs
from bench.runtime_bench import ENV, HANDLER, HERE
from bench.stats import Row
from sor.emulator.emulator import lambda_environment

sys.path.insert(0, str(HERE.parent / "tests"))
from support.runtime_api_server import RuntimeApiServer  # tests/ is not a package

FUNCTION_SLEEP = HERE / "function_sleep"
SLEEP = 0.075  # what the handler sleeps (bench/function_sleep/handler.py)
COMMANDS = {
    "sor": [sys.executable, "-m", "sor", "run"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", HANDLER],
}


def _ric_reads_the_variable() -> bool:
    import awslambdaric.lambda_config as config

    return hasattr(config.LambdaConfigProvider, "AWS_LAMBDA_MAX_CONCURRENCY")


def serve(name: str, slots: int, invocations: int) -> tuple[float, procs.Memory]:
    """Invocations per second of ``name`` at ``slots``, and its tree's memory once it served."""
    server = RuntimeApiServer()
    env = lambda_environment(ENV, str(FUNCTION_SLEEP), server.address, 30, HANDLER)
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(slots)
    proc = subprocess.Popen(
        COMMANDS[name],
        cwd=FUNCTION_SLEEP,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Every slot started and warm: as many first invocations as there are slots.
        first = [server.submit({"n": -1 - i}) for i in range(slots)]
        for pending in first:
            server.wait_answer(pending, 30)
        began = time.perf_counter()
        pendings = [server.submit({"n": i}, timeout=30) for i in range(invocations)]
        for n, pending in enumerate(pendings):
            answer = server.wait_answer(pending, 30)
            if answer.kind != "response" or answer.json().get("n") != n:
                raise RuntimeError(f"{name}: bad answer {answer.body[:200]!r}")
        elapsed = time.perf_counter() - began
        memory = procs.memory(proc.pid)
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
            proc.wait()
        server.close()
    return invocations / elapsed, memory


def rows(per_slot: int, levels: Sequence[int] = (1, 2, 4)) -> list[Row]:
    """Throughput and memory per slot at each N, sor against awslambdaric, taken in turn."""
    names = list(COMMANDS) if _ric_reads_the_variable() else ["sor"]
    out: list[Row] = []
    for n in levels:
        got = {name: serve(name, n, per_slot * n) for name in names}
        tput, memory = got["sor"]
        ideal = n / SLEEP
        if "awslambdaric" in got:
            ric_tput, ric_memory = got["awslambdaric"]
            out.append(Row(f"throughput N={n}, sor", tput, "inv/s", "awslambdaric", ric_tput))
            for kind in ("pss", "rss"):
                mine = getattr(memory, f"{kind}_kb") / n / 1024
                theirs = getattr(ric_memory, f"{kind}_kb") / n / 1024
                label = f"{kind.upper()} per slot N={n}, sor ({memory.processes} processes)"
                out.append(Row(label, mine, "MiB", "awslambdaric", theirs))
        else:
            out.append(Row(f"throughput N={n}, sor", tput, "inv/s"))
        out.append(Row(f"throughput N={n}, sor", tput, "inv/s", f"ideal {n}/{SLEEP:g} s", ideal))
    if "awslambdaric" not in names:
        out.append(
            Row("awslambdaric: this version does not read AWS_LAMBDA_MAX_CONCURRENCY", 0, "")
        )
    return out
