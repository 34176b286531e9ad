"""`make demo` runs `batchai demo`, the product's main job: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_trains_on_two_nodes_shows_stdout_and_downloads_the_model(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "demo", "--epochs", "30", "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "idleNodeCount': 2" in done.stdout
    assert "epoch   1  loss" in done.stdout and "epoch  30  loss" in done.stdout  # read while it ran
    assert "executionState: succeeded" in done.stdout
    assert (tmp_path / "out" / "model.pt").stat().st_size > 1000
    assert done.stdout.count("never shown again") == 2  # in the request it sends (password, key), in no answer
    assert "Local host stopped (exit code 0)" in done.stdout
