"""A LogPump told to stop still forwards what the pipe holds, and still stops."""

from __future__ import annotations

import os
import threading
import time

from sor.process import pipes


def test_the_last_lines_in_the_pipe_are_forwarded_when_told_to_stop() -> None:
    r, w = pipes.make_pipe()
    seen: list[str] = []
    first, release = threading.Event(), threading.Event()

    def emit(line: str) -> None:
        seen.append(line)
        first.set()
        release.wait(5)  # the thread is busy while more arrives and the stop is asked

    pump = pipes.LogPump(r, emit)
    pump.start()
    os.write(w, b"first\n")
    assert first.wait(5)
    os.write(w, b"printed just before the kill\nand this\n")
    pump.finish(0.0)  # as after a timeout kill: stop at once (a grandchild may hold the pipe)
    release.set()
    pump.join(5)
    assert not pump.is_alive()
    assert seen == ["first", "printed just before the kill", "and this"]
    pump.finish(0.0)
    os.close(w)


def test_a_writer_that_never_stops_cannot_keep_a_stopped_pump() -> None:
    r, w = pipes.make_pipe()
    pump = pipes.LogPump(r, lambda line: None)
    pump.start()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                os.write(w, b"y" * 4000 + b"\n")
            except BlockingIOError:
                time.sleep(0.001)
            except BrokenPipeError:
                return  # the pump ended and closed its end: what this test waits for

    os.set_blocking(w, False)
    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    time.sleep(0.2)
    began = time.monotonic()
    pump.finish(0.0)
    pump.join(10)
    assert not pump.is_alive() and time.monotonic() - began < 10
    stop.set()
    writer.join(5)
    pump.finish(0.0)
    os.close(w)
