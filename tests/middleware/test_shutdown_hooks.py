"""`Pipeline.shutdown`: every `shutdown` hook at once, within one deadline, failures logged."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from sor.config.model import Middleware
from sor.logs import Log
from sor.middleware.pipeline import Pipeline

# Each notes when it started and ended; "slow" outlives the deadline, "bad" fails.
HOOK = """#!/bin/sh
echo "start $(date +%s.%N)" > "$MARKS/$NAME.$1"
case "$NAME" in
  slow) sleep 30 ;;
  bad) echo "cannot flush" >&2; exit 3 ;;
  *) sleep 0.2 ;;
esac
echo "end $(date +%s.%N)" >> "$MARKS/$NAME.$1"
"""


def test_shutdown_hooks_run_at_once_within_the_deadline(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    middlewares = []
    for name, hooks in (
        ("one", ("before", "shutdown")),
        ("two", ("shutdown",)),
        ("slow", ("shutdown",)),
        ("bad", ("shutdown",)),
        ("plain", ("before", "after", "error")),
    ):
        path = tmp_path / name
        path.write_text(HOOK.replace("$NAME", name))
        path.chmod(0o755)
        middlewares.append(Middleware(name=name, path=path, hooks=hooks))
    logs = io.StringIO()
    env = {"PATH": os.environ["PATH"], "MARKS": str(marks)}
    pipeline = Pipeline(middlewares, log=Log(logs), env=env)
    pipeline.start()
    began = time.monotonic()
    deadline_ms = int(time.time() * 1000) + 1500
    pipeline.shutdown({"deadline_ms": deadline_ms, "aws_request_id": ""}, began + 1.5)
    took = time.monotonic() - began
    pipeline.close()
    assert took < 10  # "slow" (30 s) was stopped at the deadline, not waited for
    runs = {p.name: p.read_text().split() for p in marks.iterdir()}
    assert set(runs) == {"one.shutdown", "two.shutdown", "slow.shutdown", "bad.shutdown"}
    # at once: each of the 0.2 s hooks started before the other ended
    one, two = runs["one.shutdown"], runs["two.shutdown"]
    assert float(one[1]) < float(two[3]) and float(two[1]) < float(one[3])
    assert "end" not in runs["slow.shutdown"]
    text = logs.getvalue()
    assert "middleware slow (shutdown): timed out" in text
    assert "middleware bad (shutdown): ended with exit code 3" in text and "cannot flush" in text
