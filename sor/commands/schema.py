"""`sor schema`: print the JSON Schema of sor.yml (for editors and CI tools)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from sor.config.schema import schema_path


def main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print the schema file as it ships, byte for byte."""
    sys.stdout.write(Path(schema_path()).read_text(encoding="utf-8"))
    return 0
