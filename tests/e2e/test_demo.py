"""`make demo` runs `batchai demo`: it must keep working as the API grows."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_walks_through_the_api_and_stops_its_host() -> None:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("→ 200 OK") >= 5
    assert "→ 404 Not Found" in done.stdout and "→ 400 Bad Request" in done.stdout
    assert done.stdout.count("s3cr3t") == 1  # shown in the request it sends, never in an answer
    assert "Local host stopped (exit code 0)" in done.stdout
