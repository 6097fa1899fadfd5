"""sor.process: spawning with exact descriptors, process groups, bounded line reads, log pumps."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.runtime_matrix import wait_gone

from sor.process import pipes
from sor.process.exchange import Completed, run
from sor.process.spawn import describe_exit, spawn

ENV = {"PATH": os.environ["PATH"]}


def test_pipes_land_on_the_descriptors_asked_for(tmp_path: Path) -> None:
    req_r, req_w = pipes.make_pipe()
    ans_r, ans_w = pipes.make_pipe()
    # The child copies fd 3 to fd 4, upper-cased: both must be exactly there.
    child = spawn(["sh", "-c", "tr a-z A-Z <&3 >&4"], env=ENV, fds={3: req_r, 4: ans_w})
    os.close(req_r)
    os.close(ans_w)
    os.write(req_w, b"hello\n")
    os.close(req_w)
    reader = pipes.LineReader(ans_r, child, 100)
    assert reader.readline(time.monotonic() + 5) == b"HELLO"
    assert child.wait(5) == 0
    child.close()
    os.close(ans_r)


def test_a_relative_command_is_found_in_the_childs_working_directory(tmp_path: Path) -> None:
    (tmp_path / "my-runtime").write_text("#!/bin/sh\npwd\n")
    (tmp_path / "my-runtime").chmod(0o755)
    done = run_capture(["./my-runtime"], cwd=str(tmp_path))
    assert done.returncode == 0
    assert done.stdout.decode().strip() == str(tmp_path)


def test_children_start_with_sigpipe_at_its_default(tmp_path: Path) -> None:
    # Python ignores SIGPIPE; a child must not inherit that (as under Lambda).
    done = run_capture(["grep", "SigIgn", "/proc/self/status"])
    ignored = int(done.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_a_command_that_cannot_start_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-runtime"):
        spawn(["no-such-runtime"], env=ENV)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        spawn(["/nonexistent/x"], env=ENV)


def test_kill_group_reaches_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    child = spawn(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], env=ENV)
    deadline = time.monotonic() + 5
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    grandchild = int(pid_file.read_text())
    assert child.close() == -signal.SIGKILL
    assert wait_gone(grandchild)


def test_line_reader_times_out_and_sees_death() -> None:
    r, w = pipes.make_pipe()
    child = spawn(["sh", "-c", "sleep 0.3; exit 3"], env=ENV, stdout=w)
    os.close(w)
    reader = pipes.LineReader(r, child, 100)
    with pytest.raises(TimeoutError):
        reader.readline(time.monotonic() + 0.05)
    with pytest.raises(EOFError):
        reader.readline(time.monotonic() + 5)
    assert child.wait(5) == 3  # the pipe's end can be seen a moment before the exit is
    assert describe_exit(child.returncode) == "exit code 3"
    assert describe_exit(-9) == "signal SIGKILL"
    child.close()
    os.close(r)


def test_line_reader_refuses_an_endless_line() -> None:
    r, w = pipes.make_pipe()
    child = spawn(["sh", "-c", "head -c 5000 /dev/zero; sleep 5"], env=ENV, stdout=w)
    os.close(w)
    reader = pipes.LineReader(r, child, 1000)
    with pytest.raises(ValueError, match="longer than 1000 bytes"):
        reader.readline(time.monotonic() + 5)
    child.close()
    os.close(r)


def test_a_log_pump_outlives_a_broken_log() -> None:
    r, w = pipes.make_pipe()
    seen: list[str] = []

    def emit(line: str) -> None:
        seen.append(line)
        raise OSError("stderr is closed")

    pump = pipes.LogPump(r, emit)
    pump.start()
    os.write(w, b"one\ntwo\n")
    os.close(w)
    pump.join(5)
    assert not pump.is_alive()
    assert seen == ["one", "two"]
    assert list(pump.tail) == ["one", "two"]


def run_capture(argv: list[str], cwd: str | None = None) -> Completed:
    return run(argv, env=ENV, input=b"", timeout=10, max_output=1 << 20, cwd=cwd)


def test_a_log_pump_stops_although_an_escaped_grandchild_keeps_the_pipe(tmp_path: Path) -> None:
    r, w = pipes.make_pipe()
    pid_file = tmp_path / "pid"
    # The grandchild leaves the process group (setsid) and keeps stderr: EOF never comes.
    child = spawn(
        ["sh", "-c", f"echo last words >&2; setsid sleep 60 & echo $! > {pid_file}"],
        env=ENV,
        stderr=w,
    )
    os.close(w)
    pump = pipes.LogPump(r, lambda line: None)
    pump.start()
    assert child.wait(5) == 0
    began = time.monotonic()
    pump.finish(0.2)
    assert not pump.is_alive()
    assert time.monotonic() - began < 5
    assert list(pump.tail) == ["last words"]
    os.kill(int(pid_file.read_text()), 9)
    child.close()


def test_log_lines_are_cut_at_newlines_and_at_the_length_limit() -> None:
    lines = pipes.LogLines()
    assert lines.feed(b"one\r\ntw") == ["one"]
    assert lines.feed(b"o\nthree") == ["two"]
    long = b"x" * (pipes.MAX_LOG_LINE + 10)
    assert lines.feed(b"\n" + long) == ["three", "x" * pipes.MAX_LOG_LINE]
    assert lines.end() == ["x" * 10]
    assert lines.end() == []
    assert lines.feed("é".encode()[:1] + b"\n") == ["\ufffd"]
