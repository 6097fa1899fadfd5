"""`max_concurrency` in the embedded emulator: N invocations at once, the rest queued, on the
invoke endpoint and on function URLs (tests/support/raw_bootstrap.py polls from several threads,
and waits until N have been in flight together: a handshake, not a timing)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from support.emulated import (
    INVOKE_PATH,
    Served,
    head,
    http_request,
    read_all,
    written,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


def _hold_all(served: Served, callers: int, until: int, path: str) -> list[dict[str, object]]:
    spec = {"action": "hold", "until": until, "seconds": 0.2}
    results: list[dict[str, object]] = []

    def call() -> None:
        if path == INVOKE_PATH:
            request = http_request("POST", path, json.dumps(spec).encode())
        else:
            request = http_request("GET", f"{path}?spec={quote(json.dumps(spec))}")
        with served.connect(request) as sock:
            status, _, body = head(read_all(sock, bytearray()))
        results.append({"status": status, **json.loads(body)})

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.parametrize("path", [INVOKE_PATH, "/fn"])
def test_max_concurrency_runs_n_at_once_and_queues_the_rest(tmp_path: Path, path: str) -> None:
    served = Served(tmp_path, concurrency=3, workers=5)  # it polls 5 times at once: 3 get one
    try:
        results = _hold_all(served, 7, 3, path)
    finally:
        served.close()
    assert len(results) == 7 and all(r["status"] == 200 for r in results)
    # 3 were in flight together (each waited for the others), never a 4th: the rest queued
    assert max(int(str(r["peak"])) for r in results) == 3
    assert all(r["env"] == {"AWS_LAMBDA_MAX_CONCURRENCY": "3"} for r in results)


def test_without_max_concurrency_one_runs_at_a_time(tmp_path: Path) -> None:
    served = Served(tmp_path, workers=3)
    try:
        results = _hold_all(served, 3, 1, INVOKE_PATH)
    finally:
        served.close()
    assert [r["peak"] for r in results] == [1, 1, 1]
    assert all(r["env"] == {} for r in results)


def test_a_timed_out_invocation_under_concurrency_is_refused_later(tmp_path: Path) -> None:
    served = Served(tmp_path, concurrency=2, timeout=1.0)
    status_file = tmp_path / "status"
    try:
        pid = served.emulator.bootstrap_pid()
        spec = {"action": "late", "seconds": 2.5, "status_file": str(status_file)}
        result = served.emulator.invoke(json.dumps(spec).encode())
        assert result.status == 200 and result.function_error == "Unhandled"
        assert result.body == b"Task timed out after 1.00 seconds"
        echo = served.emulator.invoke(b'{"action": "echo"}')  # the other slot still serves
        assert echo.body == b'{"action": "echo"}'
        assert written(status_file) == "403"  # the late answer is refused
        assert served.emulator.bootstrap_pid() == pid  # Managed Instances let it run on
    finally:
        served.close()
