"""Warm latency, CPU per invocation, memory and cold start: sor against AWS's own runtime
clients (awslambdaric, aws-lambda-ric for Node) and a minimal `http.client` loop, every bootstrap
hosted by the same embedded emulator in the same run, interleaved (a cold start of each in turn,
warm batches of each in turn), so that a slow moment of the shared machine hits all alike."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.stats import p
from sor.emulator.emulator import Emulator
from sor.logs import Log

HERE = Path(__file__).resolve().parent
FUNCTION = HERE / "function"
# The same function with a sor.yml beside it: the usual case, and the one that reads YAML.
FUNCTION_YML = HERE / "function_yml"
# With shutdown.signal: what registering as an internal extension adds to a cold start.
FUNCTION_SHUTDOWN = HERE / "function_shutdown"
FUNCTION_NODE = HERE / "function_node"
HANDLER = "handler.handler"
NODE_RIC = HERE.parent / "tests" / "node" / "node_modules" / "aws-lambda-ric" / "bin" / "index.mjs"
# What every bootstrap sees of the machine: the programs of an image, nothing of this shell.
ENV = {"PATH": "/usr/bin:/bin"}


@dataclass(frozen=True)
class Bootstrap:
    """One way to run the bench function: a name for the table, its command and task root."""

    name: str
    argv: Sequence[str]
    directory: Path = FUNCTION
    env: Mapping[str, str] = field(default_factory=dict)


SOR = Bootstrap("sor", [sys.executable, "-m", "sor", "run"])
SOR_YML = Bootstrap("sor + sor.yml", SOR.argv, FUNCTION_YML)
RIC = Bootstrap("awslambdaric", [sys.executable, "-m", "awslambdaric", HANDLER])
MINIMAL = Bootstrap("minimal loop", [sys.executable, str(HERE / "minimal_runtime.py")])
SOR_NODE = Bootstrap("sor, node", SOR.argv, FUNCTION_NODE)
NODE_RIC_BOOT = Bootstrap("aws-lambda-ric", ["node", str(NODE_RIC), HANDLER], FUNCTION_NODE)


def node_missing() -> str:
    """Why the Node figures cannot be measured here, or nothing."""
    if shutil.which("node", path=ENV["PATH"]) is None:
        return "no node in /usr/bin:/bin"
    if not NODE_RIC.exists():
        return f"aws-lambda-ric is not installed ({NODE_RIC.parents[1]}): make node-deps"
    return ""


class _Quiet:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _emulator(boot: Bootstrap) -> Emulator:
    return Emulator(
        boot.directory,
        timeout=30,
        env={**ENV, **boot.env},
        bootstrap=list(boot.argv),
        log=Log(_Quiet()),
        handler=HANDLER,
    )


def _invoke(emu: Emulator, n: int) -> float:
    began = time.perf_counter()
    result = emu.invoke(json.dumps({"n": n}).encode())
    elapsed = time.perf_counter() - began
    if result.function_error or json.loads(result.body).get("n") != n:
        raise RuntimeError(f"bad answer {result.body[:200]!r}")
    return elapsed


def cold(boots: Sequence[Bootstrap], runs: int) -> dict[str, list[float]]:
    """Seconds from starting each bootstrap to its first response; one of each in turn."""
    samples: dict[str, list[float]] = {boot.name: [] for boot in boots}
    for i in range(runs):
        for boot in boots:
            emu = _emulator(boot)
            began = time.perf_counter()
            emu.start()
            try:
                _invoke(emu, i)
                samples[boot.name].append(time.perf_counter() - began)
            finally:
                emu.stop()
    return samples


@dataclass
class Warm:
    """What one bootstrap did warm: latencies (s), CPU of its process tree, memory at the end."""

    latencies: list[float] = field(default_factory=list)
    busy: float = 0.0  # wall seconds spent in the timed batches
    cpu: float = 0.0  # CPU seconds of the bootstrap's process tree during them
    memory: procs.Memory | None = None

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.busy

    @property
    def cpu_us(self) -> float:
        """CPU time of the whole tree per invocation, in microseconds."""
        return self.cpu / len(self.latencies) * 1e6

    def p50_ms(self) -> float:
        return p(self.latencies, 50) * 1000


def warm(boots: Sequence[Bootstrap], runs: int, rounds: int = 10) -> dict[str, Warm]:
    """``runs`` warm invocations of each bootstrap, in ``rounds`` batches taken in turn; all
    bootstraps stay started (an idle one waits in its long poll, costing nothing)."""
    emus = {boot.name: _emulator(boot) for boot in boots}
    out = {name: Warm() for name in emus}
    try:
        for emu in emus.values():
            emu.start()
            for i in range(max(10, runs // 10)):
                _invoke(emu, i)
        batch = max(1, runs // rounds)
        for _ in range(rounds):
            for name, emu in emus.items():
                pid = emu.bootstrap_pid()
                assert pid is not None
                result = out[name]
                cpu, began = procs.cpu_seconds(pid), time.perf_counter()
                result.latencies += [_invoke(emu, i) for i in range(batch)]
                result.busy += time.perf_counter() - began
                result.cpu += procs.cpu_seconds(pid) - cpu
        for name, emu in emus.items():
            pid = emu.bootstrap_pid()
            assert pid is not None
            out[name].memory = procs.memory(pid)
    finally:
        for emu in emus.values():
            emu.stop()
    return out
