"""Shared measurement helpers: percentiles and the result table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One figure of the table, with its same-run baseline and, when there is one, its target."""

    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline


def versus(
    name: str, value: float, unit: str, baseline_name: str, baseline: float, limit: float
) -> Row:
    """A figure whose target is at most ``limit`` times its same-run baseline."""
    return Row(
        name, value, unit, baseline_name, baseline, f"<= {limit:g}x", value <= limit * baseline
    )


def p(samples: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method)."""
    if len(samples) == 1:
        return samples[0]
    if pct == 50:
        return statistics.median(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    head = ("figure", "value", "baseline", "ratio", "target", "met")
    lines = [head]
    for r in rows:
        base = "" if r.baseline is None else f"{r.baseline:.3f} {r.unit} ({r.baseline_name})"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append((r.name, f"{r.value:.3f} {r.unit}", base, ratio, r.target, met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
