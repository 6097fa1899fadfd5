"""Warm latency, throughput, cold start and peak memory: sor against awslambdaric and a minimal
`http.client` runtime loop, all three hosted by the same embedded emulator in the same run."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.stats import Row, p
from sor.emulator.emulator import Emulator
from sor.logs import Log

FUNCTION = Path(__file__).resolve().parent / "function"
# The same function with a sor.yml beside it: the usual case, and the one that reads YAML.
FUNCTION_YML = Path(__file__).resolve().parent / "function_yml"
# With shutdown.signal: what registering as an internal extension adds to a cold start.
FUNCTION_SHUTDOWN = Path(__file__).resolve().parent / "function_shutdown"
HANDLER = "handler.handler"
RUNTIMES: dict[str, list[str]] = {
    "sor": [sys.executable, "-m", "sor", "run"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", HANDLER],
    "minimal loop": [sys.executable, str(Path(__file__).resolve().parent / "minimal_runtime.py")],
}


class _Quiet:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _emulator(name: str, directory: Path = FUNCTION, env: dict[str, str] | None = None) -> Emulator:
    return Emulator(
        directory, timeout=30, env=env, bootstrap=RUNTIMES[name], log=Log(_Quiet()), handler=HANDLER
    )


def _invoke(emu: Emulator, n: int) -> float:
    began = time.perf_counter()
    result = emu.invoke(json.dumps({"n": n}).encode())
    elapsed = time.perf_counter() - began
    if result.function_error or json.loads(result.body).get("n") != n:
        raise RuntimeError(f"bad answer {result.body[:200]!r}")
    return elapsed


def warm(name: str, runs: int) -> tuple[list[float], float, dict[str, int]]:
    """Per-invocation latencies (s), throughput (invocations/s) and peak memory (kB) per process."""
    emu = _emulator(name)
    emu.start()
    try:
        for i in range(max(10, runs // 10)):
            _invoke(emu, i)
        began = time.perf_counter()
        samples = [_invoke(emu, i) for i in range(runs)]
        throughput = runs / (time.perf_counter() - began)
        pid = emu.bootstrap_pid()
        memory = peak_memory(pid) if pid else {}
    finally:
        emu.stop()
    return samples, throughput, memory


def cold(
    name: str, runs: int, directory: Path = FUNCTION, env: dict[str, str] | None = None
) -> list[float]:
    """Seconds from starting the bootstrap process to its first response."""
    samples = []
    for i in range(runs):
        emu = _emulator(name, directory, env)
        began = time.perf_counter()
        emu.start()
        try:
            _invoke(emu, i)
            samples.append(time.perf_counter() - began)
        finally:
            emu.stop()
    return samples


def cold_with_telemetry(runs: int) -> list[float]:
    """Cold starts of sor with JSON logs and Lambda's telemetry descriptor (a pipe read here)."""
    r, w = os.pipe()
    os.set_inheritable(w, True)  # as Lambda hands it to the runtime
    reader = threading.Thread(target=lambda: all(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "_LAMBDA_TELEMETRY_LOG_FD": str(w)}
        return cold("sor", runs, env=env)
    finally:
        os.close(w)
        reader.join(10)
        os.close(r)


def peak_memory(root: int) -> dict[str, int]:
    """VmHWM (peak resident set, kB) of a process and each of its descendants, by command."""
    found: dict[str, int] = {}
    for pid in [root, *_descendants(root)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        hwm = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM")), 0)
        label = " ".join(Path(c.decode()).name for c in cmd[:3] if c)
        found[label] = hwm
    return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rows(runs: int, cold_runs: int) -> Sequence[Row]:
    """The runtime part of the table."""
    results = {name: warm(name, runs) for name in RUNTIMES}
    colds = {name: cold(name, cold_runs) for name in RUNTIMES}
    cold_yml = cold("sor", cold_runs, FUNCTION_YML)
    cold_logs = cold_with_telemetry(cold_runs)
    cold_shutdown = cold("sor", cold_runs, FUNCTION_SHUTDOWN)
    sor_lat, sor_tput, sor_mem = results["sor"]
    ric_lat, ric_tput, ric_mem = results["awslambdaric"]
    min_lat, min_tput, _ = results["minimal loop"]
    ms = 1000.0
    out = [
        Row(
            "warm p50, sor",
            p(sor_lat, 50) * ms,
            "ms",
            "awslambdaric",
            p(ric_lat, 50) * ms,
            "<= 1.15x",
            p(sor_lat, 50) <= 1.15 * p(ric_lat, 50),
        ),
        Row("warm p50, sor", p(sor_lat, 50) * ms, "ms", "minimal loop", p(min_lat, 50) * ms),
        Row("warm p99, sor", p(sor_lat, 99) * ms, "ms", "awslambdaric", p(ric_lat, 99) * ms),
        Row("throughput, sor", sor_tput, "inv/s", "awslambdaric", ric_tput),
        Row("throughput, sor", sor_tput, "inv/s", "minimal loop", min_tput),
        Row(
            "cold start p50, sor",
            p(colds["sor"], 50) * ms,
            "ms",
            "awslambdaric",
            p(colds["awslambdaric"], 50) * ms,
            "<= 2x",
            p(colds["sor"], 50) <= 2 * p(colds["awslambdaric"], 50),
        ),
        Row(
            "cold start p50, sor + sor.yml",
            p(cold_yml, 50) * ms,
            "ms",
            "awslambdaric",
            p(colds["awslambdaric"], 50) * ms,
            "<= 2x",
            p(cold_yml, 50) <= 2 * p(colds["awslambdaric"], 50),
        ),
        Row(
            "cold start p50, sor + JSON logs, telemetry fd",
            p(cold_logs, 50) * ms,
            "ms",
            "sor",
            p(colds["sor"], 50) * ms,
        ),
        Row(
            "cold start p50, sor + shutdown.signal",
            p(cold_shutdown, 50) * ms,
            "ms",
            "sor + sor.yml",
            p(cold_yml, 50) * ms,
        ),
        Row(
            "cold start p50, sor",
            p(colds["sor"], 50) * ms,
            "ms",
            "minimal loop",
            p(colds["minimal loop"], 50) * ms,
        ),
    ]
    ric_total = sum(ric_mem.values())
    for label, kb in sor_mem.items():
        out.append(Row(f"peak RSS, {label}", kb / 1024, "MiB", "awslambdaric", ric_total / 1024))
    return out
