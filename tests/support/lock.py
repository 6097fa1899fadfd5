"""Reading requirements.lock, the pins of everything the project installs."""

from __future__ import annotations

import re
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    """name -> version, for every `name==version` line of the lock."""
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not a pin: {line!r}"
            pins[canonical(name)] = version
    return pins
