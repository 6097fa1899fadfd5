"""`sor run` as a real child process, answering a `StreamApiServer`, over the scripted exec
runtime of tests/support/stream_adapter.py (shared by the streaming tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.stream_api import StreamApiServer

ADAPTER = Path(__file__).with_name("stream_adapter.py")
CONFIG = f"""\
version: 1
runtime:
  language: exec
  command: ["{sys.executable}", "{ADAPTER}"]
"""


class SorRun:
    """A `sor run` process with ``config`` (sor.yml text) in ``root``, and its server."""

    def __init__(self, root: Path, config: str = CONFIG, *, keep: int | None = None, **env: str):
        (root / "sor.yml").write_text(config)
        self.server = StreamApiServer(keep=keep)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOR_", "_LAM"))},
            "AWS_LAMBDA_RUNTIME_API": self.server.address,
            "LAMBDA_TASK_ROOT": str(root),
            "SOR_LAYER_DIR": str(root / "no-layer"),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            **env,
        }
        self.stderr_path = root / "sor.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sor", "run"], cwd=root, env=self.env, stderr=err
            )

    def invoke(self, steps: list[dict[str, Any]] | None = None, **options: Any) -> Any:
        """Run ``steps`` (stream_adapter.py); the answer (a StreamedAnswer when streamed)."""
        event = {"steps": steps} if steps is not None else {"plain": True}
        return self.server.invoke(event, **options)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def log_lines(self) -> list[str]:
        """sor's invocation log lines."""
        return [line for line in self.stderr.splitlines() if "\tinvocation" in line]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.server.close()
        return code
