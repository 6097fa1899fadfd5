"""Cold starts (or, with ``--warm``, warm invocations) of `sor run` from other source trees, in
turn with this one and awslambdaric.

Run: ``.venv/bin/python -m bench.tree_compare [--runs N] [--warm] TREE ...``, each TREE a
folder holding another version of sor (``git archive COMMIT | tar -x -C TREE``), run with
`PYTHONPATH` pointing at it; ``.`` is this tree. For each: the CPU time of the process tree per
cold start (sor and the adapter, `RUSAGE_CHILDREN` around each start) and the wall time to the
first response, medians, against the suite's Runtime API server on `bench/function_yml`. With
``--warm``: p50 latency and CPU per invocation, ``--runs`` rounds of `bench.runtime_bench.warm`
(1000 invocations each, batches interleaved), each against awslambdaric of the same round.
What each change of docs/performance.md bought was measured so.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from bench import runtime_bench
from bench.concurrency_bench import RuntimeApiServer
from bench.runtime_bench import ENV, FUNCTION, FUNCTION_YML, HANDLER
from sor.emulator.emulator import lambda_environment


def cold(argv: list[str], directory: str, tree: str) -> tuple[float, float]:
    """One cold start: (CPU ms of the tree, wall ms to the first response)."""
    server = RuntimeApiServer()
    base = {**ENV, **({"PYTHONPATH": tree} if tree != "." else {})}
    env = lambda_environment(base, directory, server.address, 30, HANDLER)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        answer = server.invoke({"n": 1}, wait=60)
        wall = time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait()
        server.close()
    if answer.kind != "response":
        raise RuntimeError(f"{tree}: {answer.body[:200]!r}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu * 1000, wall * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="cold starts of each")
    parser.add_argument("--warm", action="store_true", help="warm invocations, not cold starts")
    parser.add_argument("trees", nargs="+", metavar="TREE")
    args = parser.parse_args()
    if args.warm:
        return warm(args.trees, args.runs)
    sor = [sys.executable, "-m", "sor", "run"]
    ric = [sys.executable, "-m", "awslambdaric", HANDLER]
    runs: dict[str, list[tuple[float, float]]] = {t: [] for t in [*args.trees, "awslambdaric"]}
    for _ in range(args.runs):
        for tree in args.trees:
            runs[tree].append(cold(sor, str(FUNCTION_YML), tree))
        runs["awslambdaric"].append(cold(ric, str(FUNCTION), "."))
    for name, samples in runs.items():
        cpu = statistics.median(s[0] for s in samples)
        wall = statistics.median(s[1] for s in samples)
        print(f"{name:40s}  CPU p50 {cpu:7.1f} ms   wall p50 {wall:7.1f} ms")
    return 0


def warm(trees: list[str], rounds: int) -> int:
    """``rounds`` rounds of warm invocations of each tree and awslambdaric, ratios per round."""
    boots = [
        runtime_bench.Bootstrap(
            f"sor {tree}",
            runtime_bench.SOR.argv,
            FUNCTION_YML,
            {"PYTHONPATH": tree} if tree != "." else {},
        )
        for tree in trees
    ]
    for round_ in range(rounds):
        results = runtime_bench.warm([*boots, runtime_bench.RIC], 1000)
        ric = results[runtime_bench.RIC.name]
        for boot in boots:
            got = results[boot.name]
            print(
                f"round {round_}: {boot.name:32s} p50 {got.p50_ms():.3f} ms "
                f"({got.p50_ms() / ric.p50_ms():.2f}x awslambdaric), CPU {got.cpu_us:.0f} us "
                f"({got.cpu_us / ric.cpu_us:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
