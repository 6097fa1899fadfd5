"""The runtime rows of the table: every target of issue 18 for Python, Node and the layer, with
its same-run ratio and met or not, and the figures that explain them (no sor.yml, the minimal
loop, JSON logs with a telemetry descriptor, shutdown.signal)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from bench import runtime_bench as rb
from bench.layer_bench import layer_bootstrap
from bench.stats import Row, p, versus

MS = 1000.0


@contextmanager
def _telemetry() -> Iterator[rb.Bootstrap]:
    """sor with JSON logs and Lambda's telemetry descriptor: a pipe read here while it runs."""
    r, w = os.pipe()
    os.set_inheritable(w, True)  # as Lambda hands it to the runtime
    reader = threading.Thread(target=lambda: all(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "_LAMBDA_TELEMETRY_LOG_FD": str(w)}
        yield rb.Bootstrap("sor + JSON logs, telemetry fd", rb.SOR.argv, env=env)
    finally:
        os.close(w)
        reader.join(10)
        os.close(r)


def _warm_rows(
    w: dict[str, rb.Warm], sor: str, ric: str, p50: float, cpu: float | None
) -> list[Row]:
    a, b = w[sor], w[ric]
    out = [versus(f"warm p50, {sor}", a.p50_ms(), "ms", ric, b.p50_ms(), p50)]
    label = f"CPU per warm invocation, {sor}"
    if cpu is None:
        out.append(Row(label, a.cpu_us, "us", ric, b.cpu_us))
    else:
        out.append(versus(label, a.cpu_us, "us", ric, b.cpu_us, cpu))
    out.append(Row(f"warm p99, {sor}", p(a.latencies, 99) * MS, "ms", ric, p(b.latencies, 99) * MS))
    out.append(Row(f"throughput, {sor}", a.throughput, "inv/s", ric, b.throughput))
    return out


def _memory_rows(w: dict[str, rb.Warm], sor: str, ric: str) -> list[Row]:
    a, b = w[sor].memory, w[ric].memory
    assert a is not None and b is not None
    tree = f"{sor} ({a.processes} processes)"
    return [
        versus(f"RSS of the tree, {tree}", a.rss_kb / 1024, "MiB", ric, b.rss_kb / 1024, 1.3),
        versus(f"PSS of the tree, {tree}", a.pss_kb / 1024, "MiB", ric, b.pss_kb / 1024, 1.3),
    ]


def rows(runs: int, cold_runs: int) -> Sequence[Row]:
    """The runtime part of the table."""
    node = rb.node_missing()
    warm_boots = [rb.SOR_YML, rb.RIC, rb.MINIMAL]
    if not node:
        warm_boots += [rb.SOR_NODE, rb.NODE_RIC_BOOT]
    w = rb.warm(warm_boots, runs)
    with layer_bootstrap() as layer, _telemetry() as telemetry:
        shutdown = rb.Bootstrap("sor + shutdown.signal", rb.SOR.argv, rb.FUNCTION_SHUTDOWN)
        cold_boots = [rb.SOR_YML, rb.RIC, layer, rb.SOR, rb.MINIMAL, telemetry, shutdown]
        if not node:
            cold_boots += [rb.SOR_NODE, rb.NODE_RIC_BOOT]
        c = {name: p(s, 50) * MS for name, s in rb.cold(cold_boots, cold_runs).items()}

    def cold_row(name: str, base: str, limit: float = 0.0) -> Row:
        label = f"cold start p50, {name}"
        if limit:
            return versus(label, c[name], "ms", base, c[base], limit)
        return Row(label, c[name], "ms", base, c[base])

    ric = rb.RIC.name
    out = [
        *_warm_rows(w, rb.SOR_YML.name, ric, 1.15, 1.25),
        Row(
            "warm p50, sor + sor.yml",
            w[rb.SOR_YML.name].p50_ms(),
            "ms",
            "minimal loop",
            w[rb.MINIMAL.name].p50_ms(),
        ),
        cold_row(rb.SOR_YML.name, ric, 1.3),
        *_memory_rows(w, rb.SOR_YML.name, ric),
        cold_row(layer.name, ric, 1.3),
        cold_row(rb.SOR.name, ric),
        cold_row(rb.MINIMAL.name, ric),
        cold_row(telemetry.name, rb.SOR.name),
        cold_row(shutdown.name, rb.SOR_YML.name),
    ]
    if node:
        out.append(Row(f"Node figures not measured: {node}", 0.0, "", target="<= 1.2x", met=False))
    else:
        out += [
            *_warm_rows(w, rb.SOR_NODE.name, rb.NODE_RIC_BOOT.name, 1.1, None),
            cold_row(rb.SOR_NODE.name, rb.NODE_RIC_BOOT.name, 1.2),
        ]
    return out
