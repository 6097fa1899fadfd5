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


def _invoke(tmp_path: Path, event: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "sor.yml").write_text("version: 1\nruntime:\n  handler: handler.handler\n")
    return subprocess.run(
        [sys.executable, "-m", "sor", "local", "invoke", str(tmp_path), "--event", event],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", b"not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, b"nested too deeply"),  # valid JSON, deeper than Python goes
        (b'"\xff\xfe"', b"not valid JSON"),
        (None, b"cannot be read"),  # missing
        (b"", b"cannot be read"),  # a folder
        (b'{"a": "' + b"x" * (7 * 1024 * 1024) + b'"}', b"over 6291556 bytes"),
    ],
)
def test_an_unusable_event_file_is_a_usage_error_naming_it(
    tmp_path: Path, content: bytes | None, why: bytes
) -> None:
    path = tmp_path / "events" / "event.json"
    if content == b"":
        path.mkdir(parents=True)
    elif content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    done = _invoke(tmp_path, str(path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"sor local invoke: Sor.UsageError: --event {path}: ".encode())
    assert why in done.stderr
    assert b"Traceback" not in done.stderr


def test_an_event_too_deep_on_stdin_is_a_usage_error(tmp_path: Path) -> None:
    done = _invoke(tmp_path, "-", b"{" + b'"a":{' * 5000 + b"}" * 5001)
    assert done.returncode == 2
    assert b"--event stdin: " in done.stderr and b"nested too deeply" in done.stderr


def test_an_endless_event_file_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    done = _invoke(tmp_path, "/dev/zero")
    assert done.returncode == 2
    assert b"--event /dev/zero: over 6291556 bytes" in done.stderr
