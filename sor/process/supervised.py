"""A long-lived child that sor talks to: the one lifecycle of the language runtime, persistent
middlewares and the emulator's bootstrap.

The child is spawned with its pipes on exact descriptor numbers (the protocol's fd 3 and 4, or
stdin and stdout), its log streams forwarded line by line by a `LogPump`, and it leads its own
process group. Requests are written to it and answers read from it within deadlines; stopping it
closes its requests (its cue to exit), waits a grace, then kills its whole group. A pump still
held open by an escaped grandchild is told to stop and released later, never waited for.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence

from sor.process.pipes import LineReader, LogPump, make_pipe, write_all
from sor.process.spawn import Child, Forked, fork, spawn

STOP_GRACE = 0.2  # how long a stopped child (runtime, persistent middleware) may take to exit


class Retired:
    """Log pumps of stopped children that were still draining: finished on later stops, so
    their threads and descriptors are released without ever waiting on a lingering writer."""

    def __init__(self) -> None:
        self._pumps: list[LogPump] = []
        self._lock = threading.Lock()  # the emulator stops bootstraps from watcher threads

    def add(self, pump: LogPump, wait: float) -> None:
        """Finish ``pump`` (``wait``: for its end of file), keeping it if it still runs."""
        with self._lock:
            self._pumps.append(pump)
        self.finish(wait)

    def finish(self, wait: float) -> None:
        with self._lock:
            pumps, self._pumps = self._pumps, []
        running = []
        for pump in pumps:
            pump.finish(wait)
            if pump.is_alive():
                running.append(pump)
            else:
                pump.finish(0.0)  # it ended during the first call: this releases its stop pipe
        with self._lock:
            self._pumps.extend(running)


class Supervised:
    """One running child with a request pipe, an answer pipe and its log streams pumped.

    ``requests``/``answers``: the child's descriptor numbers for the two pipes (None: no such
    pipe; the child's stdin is then /dev/null). ``logs``: the child's descriptors whose lines go
    to ``emit`` (others are inherited). ``main``: fork this interpreter to run it instead of
    executing ``argv`` (sor.process.spawn.fork). Raises OSError
    (ValueError for an environment posix_spawn refuses) when it cannot be started.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        emit: Callable[[str], None],
        retired: Retired,
        cwd: str | None = None,
        requests: int | None = None,
        answers: int | None = None,
        logs: Sequence[int] = (2,),
        max_line: int = 1 << 20,
        main: Callable[[], int] | None = None,
    ) -> None:
        self.retired = retired
        ours: list[int] = []  # the parent's ends
        theirs: dict[int, int] = {}
        request_w = answer_r = log_r = -1
        try:
            if requests is not None:
                read, request_w = make_pipe()
                ours.append(request_w)
                theirs[requests] = read
            if answers is not None:
                answer_r, write = make_pipe()
                ours.append(answer_r)
                theirs[answers] = write
            if logs:
                log_r, write = make_pipe()
                ours.append(log_r)
                for fd in logs:
                    theirs[fd] = write
            streams = {"stdin": theirs.get(0), "stdout": theirs.get(1), "stderr": theirs.get(2)}
            numbered = {fd: source for fd, source in theirs.items() if fd > 2}
            if main is not None:
                where = cwd if cwd is not None else os.getcwd()  # where spawn's child would be
                self.child: Child = fork(argv, main, env=env, **streams, fds=numbered, cwd=where)
            else:
                self.child = spawn(argv, env=env, **streams, fds=numbered, cwd=cwd)
        except Forked:
            raise  # in the forked child: its descriptors are its own already
        except BaseException:
            for fd in {*ours, *theirs.values()}:
                os.close(fd)
            raise
        for fd in set(theirs.values()):
            os.close(fd)
        self.request_w = request_w
        self.reader = LineReader(answer_r, self.child, max_line) if answers is not None else None
        self.pump = LogPump(log_r, emit) if logs else None
        if self.pump is not None:
            self.pump.start()
        self._stopped = False

    def _close_requests(self) -> None:
        if self.request_w >= 0:
            os.close(self.request_w)
            self.request_w = -1

    @property
    def pid(self) -> int:
        return self.child.pid

    def exited(self) -> bool:
        return self.child.exited()

    def write(self, data: bytes, deadline: float) -> bool:
        """Write one request before ``deadline`` (TimeoutError past it); False once it is gone."""
        return write_all(self.request_w, data, self.child, deadline)

    def readline(self, deadline: float | None) -> bytes:
        """The next answer line (see `LineReader.readline` for what it raises)."""
        assert self.reader is not None, "this child has no answer pipe"
        return self.reader.readline(deadline)

    def tail(self) -> list[str]:
        """The last lines it logged."""
        return list(self.pump.tail) if self.pump is not None else []

    def stop(
        self, grace: float = 0.0, *, stderr_wait: float = 0.0, term: bool = False
    ) -> int | None:
        """End it and everything in its group; its exit code when there was one.

        It gets ``grace`` seconds to exit by itself: after its requests are closed (its cue to
        exit), or after SIGTERM to its group with ``term`` (then its requests stay open, so the
        signal is what it sees); then its group is killed. ``stderr_wait``: how long its last
        log lines may take to arrive; none by default, since the caller is answering (and a
        grandchild that left the group may hold the pipe for ever).
        """
        if self._stopped:
            return self.child.returncode
        self._stopped = True
        if grace > 0 and not self.child.exited():
            if term:
                self.child.kill_group(signal.SIGTERM)
            else:
                self._close_requests()
            self.child.wait(grace)
        self._close_requests()
        code = self.child.close()
        if self.reader is not None:
            os.close(self.reader.fd)
        if self.pump is not None:
            self.retired.add(self.pump, stderr_wait)
        return code
