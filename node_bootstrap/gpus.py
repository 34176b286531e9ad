"""The node's NVIDIA GPUs, as the driver lists them: what AZ_BATCHAI_NUM_GPUS says, and whether a
job's container gets them (`docker run --gpus all`, through NVIDIA's container toolkit)."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def gpu_count() -> int:
    """How many GPUs `nvidia-smi --list-gpus` lists (0 without a driver; asked once per agent)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if listed.returncode != 0:
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
