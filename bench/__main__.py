"""`python -m bench [--quick]`: every figure of sor against its baseline, measured in one run.

Baselines: awslambdaric (AWS's runtime interface client) and a minimal `http.client` runtime loop
on the same embedded emulator; a bare spawn of the same executable for middleware hooks; and the
Runtime API client itself against requests and http.client (import and per-call cost).
`--quick` runs a few iterations only: CI uses it as a smoke test, its figures mean nothing.
"""

from __future__ import annotations

import argparse

from bench import client_bench, layer_bench, middleware_bench, runtime_bench
from bench.stats import table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    args = parser.parse_args()
    runs, cold_runs, hook_runs, client_runs = (5, 2, 5, 1) if args.quick else (1000, 15, 300, 9)
    rows = [
        *runtime_bench.rows(runs, cold_runs),
        *layer_bench.rows(cold_runs),
        *middleware_bench.rows(hook_runs),
        *client_bench.rows(runs * 2, client_runs),
    ]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
