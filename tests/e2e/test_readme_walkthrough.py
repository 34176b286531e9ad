"""The README's walkthrough is copy-paste runnable: its block runs, as written, in a folder where
`batchai local up` was started, and ends with a trained model downloaded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- walkthrough:[^>]*-->\n```bash\n(.*?)\n```", readme, re.S)
    assert found, "the README has no walkthrough block"
    return found.group(1)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, LocalHostProcess]]:
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the project folder's examples/
    with running_host(tmp_path / ".batchai") as host:  # `batchai local up` in this folder
        yield tmp_path, host


def test_the_readme_walkthrough_runs_as_written(folder: tuple[Path, LocalHostProcess]) -> None:
    where, _ = folder
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHAI_", "AZURE_BATCHAI_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's `batchai`
    env["BATCHAI_CONFIG_FILE"] = str(where / "cli-config")  # not the user's own defaults
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=where, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Job train succeeded (exit code 0)" in done.stdout
    assert (where / "trained" / "model.pt").stat().st_size > 1000
    assert "any-key" not in done.stdout + done.stderr
