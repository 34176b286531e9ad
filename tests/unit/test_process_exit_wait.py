"""An agent sees its job's process end when it ends (a pidfd), not at its next look of a poll."""

from __future__ import annotations

import subprocess
import time

from node_bootstrap.attempt import until_exit


def test_the_wait_ends_when_one_of_the_processes_exits_and_else_at_its_timeout() -> None:
    slow, quick = subprocess.Popen(["sleep", "30"]), subprocess.Popen(["sleep", "0.2"])
    try:
        started = time.monotonic()
        until_exit([slow, quick], 10)
        assert time.monotonic() - started < 5 and quick.poll() == 0 and slow.poll() is None
        started = time.monotonic()
        until_exit([slow], 0.3)
        assert 0.25 < time.monotonic() - started < 5 and slow.poll() is None
        slow.kill()
        until_exit([slow], 10)  # a killed process ends the wait too (the agent's stop)
        assert slow.wait(1) == -9
    finally:
        slow.kill()
        slow.wait()
