"""sor.process.exchange: a short-lived child fed one input and read to the end, that can never hang
us."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from support.runtime_matrix import wait_gone

from sor.process.exchange import run

ENV = {"PATH": os.environ["PATH"]}


def sh(script: str, data: bytes = b"", timeout: float = 10, max_output: int = 1 << 24):  # type: ignore[no-untyped-def]
    return run(["sh", "-c", script], env=ENV, input=data, timeout=timeout, max_output=max_output)


def test_input_output_status_and_stderr_lines() -> None:
    lines: list[str] = []
    done = run(
        ["sh", "-c", "cat; echo oops >&2; printf 'no newline' >&2; exit 3"],
        env=ENV,
        input=b'{"a": 1}',
        timeout=10,
        max_output=100,
        on_stderr_line=lines.append,
    )
    assert (done.returncode, done.stdout, done.timed_out, done.overflow) == (
        3,
        b'{"a": 1}',
        False,
        False,
    )
    assert lines == ["oops", "no newline"]
    assert done.stderr_tail == ("oops", "no newline")


def test_payloads_larger_than_a_pipe_round_trip() -> None:
    data = os.urandom(3 << 20).hex().encode()  # 6 MB
    done = run(["cat"], env=ENV, input=data, timeout=20, max_output=8 << 20)
    assert done.returncode == 0
    assert done.stdout == data


def test_a_timeout_kills_the_grandchild_holding_stdout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    began = time.monotonic()
    done = sh(f"sleep 30 & echo $! > {pid_file}; sleep 30", timeout=0.3)
    assert time.monotonic() - began < 5
    assert done.timed_out and done.returncode is None
    assert wait_gone(int(pid_file.read_text()))


def test_leftovers_of_a_finished_child_are_killed_without_waiting(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    began = time.monotonic()
    done = sh(f"sleep 30 & echo $! > {pid_file}; echo done")
    assert time.monotonic() - began < 5
    assert (done.returncode, done.stdout) == (0, b"done\n")
    assert wait_gone(int(pid_file.read_text()))


def test_a_child_that_closes_its_pipes_early_still_gets_its_exit_status() -> None:
    done = sh("echo early; exec 1>&- 2>&-; sleep 0.2; exit 0")
    assert (done.returncode, done.stdout, done.timed_out) == (0, b"early\n", False)


def test_too_much_output_is_cut_and_reported() -> None:
    done = sh("head -c 50000000 /dev/zero", max_output=1 << 20)
    assert done.overflow and done.returncode is None
    assert len(done.stdout) <= (1 << 20) * 2


def test_a_child_that_ignores_its_input_is_fine() -> None:
    done = run(
        [sys.executable, "-c", "print('ignored')"],
        env=ENV,
        input=b"x" * (4 << 20),
        timeout=10,
        max_output=100,
    )
    assert (done.returncode, done.stdout) == (0, b"ignored\n")


def test_a_broken_log_does_not_fail_the_child() -> None:
    def broken(line: str) -> None:
        raise OSError("the log is gone")

    done = run(
        ["sh", "-c", "echo warn >&2; echo out"],
        env=ENV,
        input=b"",
        timeout=10,
        max_output=100,
        on_stderr_line=broken,
    )
    assert (done.returncode, done.stdout, done.stderr_tail) == (0, b"out\n", ("warn",))


def test_a_child_that_cannot_start_leaves_no_descriptor_behind() -> None:
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        try:
            run(
                ["sh", "-c", "true"],
                env={**ENV, "BAD": "a\0b"},
                input=b"",
                timeout=5,
                max_output=10,
            )
        except OSError as exc:
            assert "cannot start sh" in str(exc)
        else:
            raise AssertionError("a NUL byte in the environment must not start anything")
    assert set(os.listdir("/proc/self/fd")) == before
