"""Streams under concurrency: several streamed answers at once from one shared Node process
(sor.runtime.shared routes their messages by id), each its own; one that runs past its deadline
ends with a `Sor.Timeout` trailer and retires the process without cutting the others short."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from support.stream_run import SorRun

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")

HANDLER = textwrap.dedent(
    """
    const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
    exports.handler = awslambda.streamifyResponse(async (event, stream, context) => {
      stream.setContentType('text/plain');
      for (let i = 0; i < event.chunks; i++) {
        stream.write(`${event.n}:${i}:${process.pid}\\n`);
        await sleep(event.pause);
      }
      stream.end(`${context.awsRequestId}\\n`);
    });
    """
)
CONFIG = "version: 1\nruntime: {language: node, handler: index.handler}\n"


def run(tmp_path: Path) -> SorRun:
    (tmp_path / "index.js").write_text(HANDLER)
    return SorRun(tmp_path, CONFIG, AWS_LAMBDA_MAX_CONCURRENCY="4")


def test_four_streams_at_once_from_one_process_each_its_own(tmp_path: Path) -> None:
    sor = run(tmp_path)
    try:
        pending = [
            sor.server.submit({"n": n, "chunks": 4, "pause": 0.3}, timeout=30) for n in range(4)
        ]
        answers = [sor.server.wait_stream(p, wait=30) for p in pending]
        pids = set()
        for n, (p, answer) in enumerate(zip(pending, answers, strict=True)):
            lines = answer.body.decode().splitlines()
            assert answer.error_type is None, answer.trailers
            assert [line.split(":")[:2] for line in lines[:-1]] == [
                [str(n), str(i)] for i in range(4)
            ]
            assert lines[-1] == p.request_id  # its own context
            pids |= {line.split(":")[2] for line in lines[:-1]}
        assert len(pids) == 1, "one Node process ran the four streams"
        # They ran at once: each began before any other ended.
        assert max(a.started_at for a in answers) < min(a.ended_at or 0.0 for a in answers)
    finally:
        sor.stop()


def test_a_stream_past_its_deadline_ends_alone_and_the_next_ones_are_served(
    tmp_path: Path,
) -> None:
    sor = run(tmp_path)
    try:
        slow = sor.server.submit({"n": 9, "chunks": 100, "pause": 0.2}, timeout=2)
        quick = [
            sor.server.submit({"n": n, "chunks": 3, "pause": 0.2}, timeout=30) for n in range(3)
        ]
        cut = sor.server.wait_stream(slow, wait=30)
        assert cut.error_type == "Sor.Timeout", cut.trailers
        assert cut.body.startswith(b"9:0:")
        for n, p in enumerate(quick):
            answer = sor.server.wait_stream(p, wait=30)
            assert answer.error_type is None, answer.trailers
            assert answer.body.decode().splitlines()[-1] == p.request_id
            assert answer.body.startswith(f"{n}:0:".encode())
        again = [
            sor.server.submit({"n": n, "chunks": 2, "pause": 0.1}, timeout=30) for n in range(4)
        ]
        for p in again:
            answer = sor.server.wait_stream(p, wait=30)
            assert answer.error_type is None, answer.trailers
        assert "is retired" in sor.stderr
    finally:
        sor.stop()


def test_a_stream_an_after_hook_refuses_retires_its_shared_process(tmp_path: Path) -> None:
    # The refused stream's handler still writes: its process is retired (not left feeding a
    # queue nobody reads), and the next invocation runs in a new one.
    (tmp_path / "index.js").write_text(HANDLER)
    hook = tmp_path / "bad_after"
    hook.write_text(  # fails the first call only
        '#!/bin/sh\ncat >/dev/null\n[ -e "$0.failed" ] && exit 0\ntouch "$0.failed"\nexit 3\n'
    )
    hook.chmod(0o755)
    config = CONFIG + "middlewares:\n  - name: bad\n    path: ./bad_after\n    hooks: [after]\n"
    sor = SorRun(tmp_path, config, AWS_LAMBDA_MAX_CONCURRENCY="2")
    try:
        refused = sor.server.invoke({"n": 1, "chunks": 50, "pause": 0.1}, timeout=30)
        assert refused.kind == "error", refused.body[:300]
        answer = sor.server.wait_stream(
            sor.server.submit({"n": 2, "chunks": 1, "pause": 0}, timeout=30), wait=30
        )
        assert answer.error_type is None, answer.trailers
        assert "is retired" in sor.stderr
        assert "starting a new node language runtime" in sor.stderr
    finally:
        sor.stop()
