"""A node's execution log of a job (or of its setup): what the agent did and when, one timestamped
line per step, written as it happens so that it can be read while the job runs. It never holds a
variable's value: commands are logged as written, before the shell expands them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path


class ExecutionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(f"{stamp} {message}\n")
