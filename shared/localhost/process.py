"""Start the local host (`python -m shared.localhost up`, what `batchai local up` execs) as a child
process and wait until it serves; used by the demo, the tests and the benchmarks, so that all of
them run the real host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"ready at (http://\S+)")


@dataclass
class LocalHostProcess:
    process: subprocess.Popen[str]
    endpoint: str
    data_dir: Path
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        """What a client sends to be let in: the owner token the host keeps in its data folder."""
        try:
            return {"Authorization": f"Bearer {(self.data_dir / 'token').read_text().strip()}"}
        except FileNotFoundError:
            return {}

    @property
    def servicebus_connection_string(self) -> str | None:
        """The connection string of the host's AMQP door (Service Bus clients), while it is open."""
        try:
            return (self.data_dir / "servicebus").read_text().strip() or None
        except FileNotFoundError:
            return None

    def stop(self, timeout: float = 10) -> int:
        """Ctrl-C, as a user would; killed if it does not stop in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """Die at once, as in a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_local_host(data_dir: Path, *, port: int = 0, env: Mapping[str, str] | None = None,
                     timeout: float = 30, workers: int = 1) -> LocalHostProcess:
    """One host process by default; `workers` > 1: a supervisor of that many instances."""
    command = [sys.executable, "-m", "shared.localhost", "up", "--data-dir", str(data_dir), "--port", str(port),
               "--list-functions", "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    output: list[str] = []
    ready = threading.Event()
    found: list[str] = []

    def pump() -> None:  # keep reading so the child never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if not found:
        host = LocalHostProcess(process, "", data_dir, output)
        host.kill()
        raise RuntimeError("the local host did not start:\n" + "\n".join(output[-40:]))
    return LocalHostProcess(process, found[0], data_dir, output)
