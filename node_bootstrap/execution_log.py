"""A node's execution log of a job (or of its setup): what the agent did and when, one timestamped
line per step, written as it happens so that it can be read while the job runs. It never holds a
variable's value: commands are logged as written, before the shell expands them.

Writing it never fails the attempt: its folder may be impossible to make (the job's error then says
why) or removed by the job itself; a line that cannot be written goes to the agent's own log."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path


log = logging.getLogger("node_bootstrap")


class ExecutionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8", errors="backslashreplace") as out:
                    out.write(f"{stamp} {message}\n")
            except (OSError, ValueError):
                log.warning("%s (execution log %r not writable)", message, str(self.path))
