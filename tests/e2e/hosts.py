"""The local host as end-to-end tests run it: started in a data folder, stopped cleanly at the end
(its exit code checked), and whatever it left — its agents lead their own process groups — killed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from shared.localhost.instances import running
from shared.localhost.process import LocalHostProcess, start_local_host


@contextmanager
def running_host(data_dir: Path, env: Mapping[str, str] | None = None, timeout: float = 30, workers: int = 1
                 ) -> Iterator[LocalHostProcess]:
    host = start_local_host(data_dir, env=env, timeout=timeout, workers=workers)
    try:
        yield host
        assert host.stop() == 0, "\n".join(host.output[-40:])
    finally:
        host.kill()
        kill_agents(data_dir)


def agent_pids(data_dir: Path, cluster: str = "") -> list[int]:
    """Live agent processes of a host's local pool (of one cluster, if named); each pid is checked
    against its command line, which names the node's folder."""
    found = []
    for pid_file in (data_dir / "pools").glob("*/*/agent.pid"):
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            boot = json.loads((pid_file.parent / "bootstrap.json").read_text())
        except (OSError, ValueError):
            continue
        if str(pid_file.parent).encode() in cmdline and (not cluster or boot["cluster_id"].endswith(f"/clusters/{cluster}")):
            found.append(pid)
    return found


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a zombie only waits for its parent to reap it)."""
    return running(pid)


def kill_agents(data_dir: Path) -> None:
    """Safety net after a host that was killed: its agents lead their own process groups."""
    for pid in agent_pids(data_dir):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
