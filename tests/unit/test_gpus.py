"""The node's GPUs as the driver lists them: AZ_BATCHAI_NUM_GPUS and `docker run --gpus all`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node_bootstrap import toolkits
from node_bootstrap.gpus import gpu_count
from node_bootstrap.launch import setup_environment

TWO_GPUS = """#!/bin/sh
[ "$1" = --list-gpus ] || exit 2
echo "GPU 0: Tesla V100-PCIE-16GB (UUID: GPU-1)"
echo "GPU 1: Tesla V100-PCIE-16GB (UUID: GPU-2)"
"""


@pytest.fixture(autouse=True)
def fresh_count() -> Iterator[None]:
    gpu_count.cache_clear()
    yield
    gpu_count.cache_clear()


def test_a_node_with_the_driver_counts_its_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"  # the driver's tool, as it answers on a 2-GPU VM
    smi.write_text(TWO_GPUS)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gpu_count() == 2
    assert setup_environment(tmp_path, "10.0.0.4", {})["AZ_BATCHAI_NUM_GPUS"] == "2"


def test_a_node_without_the_driver_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_count() == 0


def test_containers_get_the_gpus_of_a_gpu_node() -> None:
    props = {"containerSettings": {"imageSourceRegistry": {"image": "pytorch/pytorch"}}}
    with_gpus = toolkits.container_start_argv(props, "batchai-x", [], gpus=True)
    assert with_gpus[with_gpus.index("--gpus") + 1] == "all"
    assert "--gpus" not in toolkits.container_start_argv(props, "batchai-x", [])
