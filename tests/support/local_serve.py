"""`sor local serve` as a real process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


class Serve:
    """`sor local serve DIR --port 0` as a real process; its port read from its first line."""

    def __init__(self, directory: Path, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOR_", "AWS_LAMBDA_"))}
        argv = [sys.executable, "-m", "sor", "local", "serve", str(directory), "--port", "0"]
        argv.extend(extra)
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, env=env)
        self.logs: list[str] = []
        ready = threading.Event()
        port: list[int] = []

        def pump() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.logs.append(line)
                if "listening on http://" in line and not port:
                    address = line.split("http://", 1)[1].split("/", 1)[0]
                    port.append(int(address.rsplit(":", 1)[1]))
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        assert ready.wait(20), "".join(self.logs)
        self.url = f"http://127.0.0.1:{port[0]}"

    def log_text(self) -> str:
        return "".join(self.logs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(15) == 0, self.log_text()
