"""What one middleware hook costs: exec mode against a bare spawn, and persistent mode.

Run: ``.venv/bin/python -m bench.middleware_bench [--runs N]``, or ``python -m bench`` for the
whole table. The baseline runs the same executable with the same input through the standard
library's ``subprocess.run``, so the difference is all that sor adds (its spawn, env, JSON,
result handling). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import Row, p, table
from sor.config.model import Middleware
from sor.logs import Log
from sor.middleware.exec_mode import ExecHooks
from sor.middleware.hook import hook_env
from sor.middleware.persistent_mode import PersistentHooks
from sor.payload import encode

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
# Explanatory rows: an answer sor must decode, and the floor (a bare pipe round trip).
PY_PERSISTENT_PAYLOAD = PY_PERSISTENT.replace("'{}\\n'", '\'{"payload":{"ok":true}}\\n\'')
ECHO = PY_PERSISTENT.split("\n", 1)[1]  # the same loop, run by a bare subprocess.Popen


def write_exe(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def samples(fn: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    """Latencies of ``fn`` in milliseconds, after a few warm-up calls."""
    for _ in range(min(warmup, runs)):
        fn()
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        out.append((time.perf_counter() - began) * 1000)
    return out


def paired(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 latencies (ms) of ``a`` and ``b``, taken in turn in batches of ten."""
    samples(a, 5)
    samples(b, 5)
    sa: list[float] = []
    sb: list[float] = []
    batch = min(10, runs)
    for _ in range(max(1, runs // batch)):
        sa += samples(a, batch, 0)
        sb += samples(b, batch, 0)
    return p(sa, 50), p(sb, 50)


def rows(runs: int) -> list[Row]:
    """The middleware part of the table: exec hooks against a bare spawn, persistent hooks."""
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    log = Log(io.StringIO())
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for lang, text in (("sh", SH), ("python", PY)):
            exe = write_exe(folder, f"mw-{lang}", text)
            data = encode(EVENT)
            bare_env = hook_env(env, "before", CONTEXT)

            def bare(
                exe: Path = exe, data: bytes = data, bare_env: dict[str, str] = bare_env
            ) -> None:
                # The baseline is the standard library's own spawn, not sor's process helper.
                subprocess.run(
                    [str(exe), "before"], input=data, env=bare_env, capture_output=True, check=True
                )

            runner = ExecHooks(Middleware(name=lang, path=exe), log=log, env=env)
            hook, base = paired(lambda r=runner: r.call("before", EVENT, CONTEXT, 10), bare, runs)
            out.append(
                Row(
                    f"exec hook p50, {lang}",
                    hook,
                    "ms",
                    "bare spawn",
                    base,
                    "<= bare spawn + 0.3 ms",
                    hook <= base + 0.3,
                )
            )
        exe = write_exe(folder, "mw-persistent", PY_PERSISTENT)
        persistent = PersistentHooks(
            Middleware(name="p", path=exe, mode="persistent"), log=log, env=env
        )
        persistent.start()
        try:
            lat = samples(lambda: persistent.call("before", EVENT, CONTEXT, 10), runs * 5)
        finally:
            persistent.close()
        out.append(
            Row(
                "persistent hook p50, python",
                p(lat, 50),
                "ms",
                target="<= 0.05 ms",
                met=p(lat, 50) <= 0.05,
            )
        )
        out.append(Row("persistent hook p99, python", p(lat, 99), "ms"))
        out += floor_rows(folder, env, log, runs)
    return out


def floor_rows(folder: Path, env: dict[str, str], log: Log, runs: int) -> list[Row]:
    """What a persistent hook cannot go below, measured in turn with it: the same Python loop
    behind a bare pipe (one write, one blocking read of the same request line), and a hook whose
    answer sor must decode (``{"payload": ...}`` rather than ``{}``)."""
    exe = write_exe(folder, "mw-persistent-payload", PY_PERSISTENT_PAYLOAD)
    hooks = PersistentHooks(Middleware(name="pp", path=exe, mode="persistent"), log=log, env=env)
    child = subprocess.Popen(
        [sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert child.stdin is not None and child.stdout is not None
    w, r = child.stdin.fileno(), child.stdout.fileno()
    line = encode({"hook": "before", "payload": EVENT, "context": CONTEXT}) + b"\n"

    def round_trip() -> None:
        os.write(w, line)
        os.read(r, 1 << 16)

    hooks.start()
    try:
        hook, bare = paired(lambda: hooks.call("before", EVENT, CONTEXT, 10), round_trip, runs * 5)
    finally:
        hooks.close()
        child.stdin.close()
        child.wait(10)
    return [
        Row("persistent hook p50, payload answer", hook, "ms", "pipe round trip", bare),
        Row("pipe round trip p50, python", bare, "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="calls per exec-mode row")
    args = parser.parse_args()
    print(table(rows(args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
