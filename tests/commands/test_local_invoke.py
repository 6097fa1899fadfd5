"""`sor local invoke --timeout`: only finite positive durations (exit 2 otherwise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e400"])
def test_a_timeout_that_is_no_duration_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sor", "local", "invoke", str(tmp_path), f"--timeout={value}"],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"Sor.UsageError" in done.stderr
    assert b"--timeout " in done.stderr
    assert b"greater than 0 and below 86400" in done.stderr
