"""Time `sor validate` on a generated sor.yml with 500 middlewares (a benchmark, not a test).

Run: .venv/bin/python bench/validate_bench.py [--middlewares N] [--runs R]
Prints the wall time of the real command (interpreter start included) and of the in-process
check alone (parse + schema + rules), cold (first call: jsonschema imported and compiled) and warm.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(count: int) -> str:
    """A valid sor.yml using every middleware setting, `count` middlewares long."""
    lines = ["version: 1", "runtime:", "  language: python", "  handler: app.handler"]
    lines.append("middlewares:")
    for i in range(count):
        lines.append(f"  - name: middleware-{i}")
        if i % 3 == 0:
            lines.append(f"    path: ./tools/m{i}")
        if i % 2 == 0:
            lines.append("    timeout: {before: 250ms, after: 2s, error: 1s}")
        else:
            lines.append("    timeout: 1.5s")
        lines.append(f"    mode: {'persistent' if i % 5 == 0 else 'exec'}")
        lines.append(f"    on_error: {'continue' if i % 2 else 'fail'}")
        lines.append("    hooks: [before, after, error]")
    lines += ["timeouts:", "  grace: 300ms", "  middleware: 1s"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--middlewares", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "sor.yml"
        file.write_text(generate(opts.middlewares))
        walls = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "sor", "validate", str(file)],
                capture_output=True,
                text=True,
                check=False,
            )
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)
                return 1
        from sor.config import loader
        from sor.config.schema import check
        from sor.config.yaml_source import parse

        text = file.read_text()
        start = time.perf_counter()
        loader.check_file(file)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            assert check(parse(text, str(file))) == []
            warm.append(time.perf_counter() - start)
    size = len(text.splitlines())
    print(f"sor validate, {opts.middlewares} middlewares ({size} lines), {opts.runs} runs:")
    print(f"  command (new interpreter): median {statistics.median(walls) * 1000:.0f} ms")
    print(f"  in process, first call:    {cold * 1000:.0f} ms (imports jsonschema, compiles)")
    print(f"  in process, warm:          median {statistics.median(warm) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
