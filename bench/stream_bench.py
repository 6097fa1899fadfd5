"""A 100 MiB response stream through `sor run` (issue 12): sor's peak RSS against the target of
64 MiB, with sor's own peak once warm, before the stream, as the baseline (what streaming adds),
and the stream's rate. The Python adapter yields 64 KiB chunks; the suite's recording Runtime API
server (tests/support) reads the chunked POST and keeps none of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.runtime_bench import ENV, HERE
from bench.stats import Row
from sor.emulator.emulator import lambda_environment

sys.path.insert(0, str(HERE.parent / "tests"))
from support.stream_api import StreamApiServer  # tests/ is not a package

FUNCTION = HERE / "function_stream"
LIMIT_MIB = 64.0  # the bound on sor's peak RSS for a 100 MB stream


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rows(mib: int) -> Sequence[Row]:
    """sor's peak RSS over a ``mib`` MiB stream, and the stream's rate."""
    server = StreamApiServer(keep=0)
    env = lambda_environment(ENV, str(FUNCTION), server.address, 300, "handler.handler")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sor", "run"],
        cwd=FUNCTION,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        warm = server.wait_stream(server.submit({"mib": 1}, timeout=120), wait=120)
        assert warm.size == 1 << 20, warm.size
        before = _peak_mib(proc.pid)
        began = time.monotonic()
        answer = server.wait_stream(server.submit({"mib": mib}, timeout=300), wait=300)
        took = time.monotonic() - began
        assert answer.size == mib << 20 and answer.error_type is None, answer.trailers
        peak = _peak_mib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        server.close()
    name = f"peak RSS of sor, a {mib} MiB stream"
    return [
        Row(name, peak, "MiB", "sor warm, before it", before, f"<= {LIMIT_MIB:g} MiB", peak <= 64),
        Row(f"stream rate, {mib} MiB in 64 KiB chunks", mib / took, "MiB/s"),
    ]
