"""`sor local serve`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from sor.errors import UsageError


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    raise UsageError("`sor local serve` is not built yet")
