"""sor.process: spawning with exact descriptors, process groups, bounded line reads, log pumps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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


FORKER = r"""
import atexit, json, os, signal, sys
from sor.process.spawn import Forked, fork

signal.signal(signal.SIGTERM, lambda *_: None)  # as sor's own handlers are, before the fork
low = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]  # the pipes below are above 5
closing_r, _ = os.pipe()  # close-on-exec: a spawned child would not have it
kept_r, _ = os.pipe()
os.set_inheritable(kept_r, True)
out_r, out_w = os.pipe()

def main():
    atexit.register(lambda: os.write(3, b'"atexit ran"\n'))
    def is_open(fd):
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False
    report = {
        "leader": os.getsid(0) == os.getpid(),
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k != "SOR_PROCESS_MARKS"},
        "marked": bool(os.environ.get("SOR_PROCESS_MARKS")),
        "stdin": os.readlink("/proc/self/fd/0"),
        "closing": is_open(closing_r),
        "kept": is_open(kept_r),
        "out_w": is_open(out_w),
        "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    }
    os.write(3, (json.dumps(report) + "\n").encode())
    return 7

try:
    child = fork(["the-runtime"], main, env={"ONLY": "this"}, fds={3: out_w}, cwd=sys.argv[1])
except Forked as forked:
    runtime = forked.main
else:
    os.close(out_w)
    lines = b"".join(iter(lambda: os.read(out_r, 65536), b"")).decode().splitlines()
    print(json.dumps({"code": child.wait(10), "lines": lines}))
    raise SystemExit(0)
raise SystemExit(runtime())
"""


def test_a_forked_child_starts_as_a_spawned_one_would(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORKER, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["code"] == 7  # what main returned, after its atexit functions
    report, last = json.loads(result["lines"][0]), json.loads(result["lines"][1])
    assert report == {
        "leader": True,
        "cwd": str(tmp_path),
        "env": {"ONLY": "this"},
        "marked": True,
        "stdin": "/dev/null",
        "closing": False,
        "kept": True,
        "out_w": False,  # it is fd 3 now, its old number closed with the other close-on-exec ones
        "sigterm": True,
        "sigint": True,
    }
    assert last == "atexit ran"


def test_fork_into_a_missing_folder_fails_in_the_parent(tmp_path: Path) -> None:
    from sor.process.spawn import fork

    with pytest.raises(FileNotFoundError, match="no directory"):
        fork(["rt"], lambda: 0, env=ENV, cwd=str(tmp_path / "missing"))
