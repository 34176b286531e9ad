"""`make demo` runs `batchai demo`, the product's main job, through `batchai` commands: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_trains_on_two_nodes_shows_stdout_and_downloads_the_model(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "demo", "--epochs", "30", "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "$ batchai cluster create --name demo_cluster" in done.stdout  # it shows the commands it runs
    assert "epoch   1  loss" in done.stdout and "epoch  30  loss" in done.stdout  # streamed while it ran
    assert "Job spirals succeeded (exit code 0)" in done.stdout
    assert (tmp_path / "out" / "model.pt").stat().st_size > 1000
    assert "model.pt" in done.stdout
    assert "never shown" not in done.stdout + done.stderr  # the storage key went by the environment only
    assert "Local host stopped (exit code 0)" in done.stdout
