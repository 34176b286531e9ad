"""The test run's stand-in servers never outlive it, even when it dies without cleaning up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_server_ends_when_the_run_that_started_it_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    script = textwrap.dedent(f"""
        import sys, time
        from tests.servers import free_port, running_server
        port = free_port()
        with running_server([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                            "127.0.0.1", port) as proc:
            open({str(pid_file)!r}, "w").write(str(proc.pid))
            time.sleep(60)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    server = 0
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and run.poll() is None, "the server did not start"
            time.sleep(0.05)
        server = int(pid_file.read_text())
        run.send_signal(signal.SIGKILL)  # no finally runs: only the kernel can stop the server now
        run.wait(10)
        while _alive(server):
            assert time.monotonic() < deadline + 10, f"server {server} outlived the run that started it"
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
        if server and _alive(server):  # the case failed: stop what it started all the same
            os.kill(server, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie (exited, not yet reaped) counts as gone
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
