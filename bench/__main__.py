"""`python -m bench [--quick]`: every figure of sor against its baseline, measured in one run.

Baselines: awslambdaric and aws-lambda-ric (AWS's runtime interface clients for Python and Node)
and a minimal `http.client` runtime loop on the same embedded emulator, interleaved; a bare spawn
of the same executable for middleware hooks; awslambdaric at the same concurrency for the
throughput of an I/O-bound handler; and the Runtime API client itself against requests and
http.client (import and per-call cost); sor's peak memory over a 100 MiB stream. Every target
of issues 12 and 18 says met or not.
`--quick` runs a few iterations only: CI uses it as a smoke test, its figures mean nothing.
"""

from __future__ import annotations

import argparse

from bench import (
    client_bench,
    concurrency_bench,
    middleware_bench,
    runtime_targets,
    stream_bench,
)
from bench.stats import table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    args = parser.parse_args()
    quick = (5, 2, 5, 1, 2, 2) if args.quick else (1000, 15, 300, 9, 12, 100)
    runs, cold_runs, hook_runs, client_runs, per_slot, stream_mib = quick
    rows = [
        *runtime_targets.rows(runs, cold_runs),
        *middleware_bench.rows(hook_runs),
        *concurrency_bench.rows(per_slot),
        *stream_bench.rows(stream_mib),
        *client_bench.rows(runs * 2, client_runs),
    ]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
