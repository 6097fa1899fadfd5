"""What one middleware hook costs: exec mode against a bare spawn, and persistent mode.

Run: ``.venv/bin/python bench/middleware_bench.py [--runs N]``. Prints a table of p50/p99 latency
per hook call. The "bare spawn" rows run the same executable through ``sor.process.run`` with the
same input, so the difference is what sor's middleware layer adds (env, JSON encode/decode,
result handling). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sor import process
from sor.config import Middleware
from sor.logs import Log
from sor.middleware import MAX_OUTPUT, ExecRunner, PersistentRunner, encode, hook_env

EVENT = {"httpMethod": "GET", "path": "/items/7", "headers": {"accept": "application/json"}}
CONTEXT = {"aws_request_id": "bench", "deadline_ms": 0, "function_name": "bench"}

SH = "#!/bin/sh\ncat > /dev/null\n"
PY = f"#!{sys.executable}\nimport json, sys\nevent = json.load(sys.stdin)\n"
PY_PERSISTENT = (
    f"#!{sys.executable}\nimport sys\n"
    "for line in sys.stdin:\n"
    "    sys.stdout.write('{}\\n')\n"
    "    sys.stdout.flush()\n"
)


def write_exe(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p99 of ``fn`` in milliseconds, after a few warm-up calls."""
    for _ in range(min(5, runs)):
        fn()
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="calls per exec-mode row")
    parser.add_argument(
        "--persistent-runs", type=int, default=2000, help="calls per persistent row"
    )
    args = parser.parse_args()
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    log = Log(io.StringIO())
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for lang, text in (("sh", SH), ("python", PY)):
            exe = write_exe(folder, f"mw-{lang}", text)
            data = encode(EVENT)
            argv = [str(exe), "before"]
            bare_env = hook_env(env, "before", CONTEXT)

            def bare(
                argv: list[str] = argv, data: bytes = data, bare_env: dict[str, str] = bare_env
            ) -> object:
                return process.run(
                    argv, env=bare_env, input=data, timeout=10, max_output=MAX_OUTPUT
                )

            runner = ExecRunner(Middleware(name=lang, path=exe), log=log, env=env)
            rows.append((f"bare spawn ({lang})", *measure(bare, args.runs)))
            rows.append(
                (
                    f"exec hook ({lang})",
                    *measure(lambda r=runner: r.call("before", EVENT, CONTEXT, 10), args.runs),
                )
            )
        exe = write_exe(folder, "mw-persistent", PY_PERSISTENT)
        persistent = PersistentRunner(
            Middleware(name="p", path=exe, mode="persistent"), log=log, env=env
        )
        persistent.start()
        try:
            rows.append(
                (
                    "persistent hook (python)",
                    *measure(
                        lambda: persistent.call("before", EVENT, CONTEXT, 10),
                        args.persistent_runs,
                    ),
                )
            )
        finally:
            persistent.close()
    width = max(len(name) for name, _, _ in rows)
    print(f"{'one before hook':<{width}}  {'p50 ms':>8}  {'p99 ms':>8}")
    for name, p50, p99 in rows:
        print(f"{name:<{width}}  {p50:>8.3f}  {p99:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
