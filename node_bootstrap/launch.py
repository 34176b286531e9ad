"""Launching on a node: the job's environment with its folders made (shared/job_environment.py
computes both), the setup task's environment, and the names of the files output goes to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_bootstrap.gpus import gpu_count
from shared.job_environment import JobPaths, job_variables, own_variables


@dataclass(frozen=True)
class LogNames:
    """The master's files have the names ENVIRONMENT.md gives; other nodes add their id."""

    stdout: str
    stderr: str
    prep_stdout: str
    prep_stderr: str
    execution: str


def log_names(master: bool, node_id: str) -> LogNames:
    tag = "" if master else f"-{node_id}"
    return LogNames(stdout=f"stdout{tag}.txt", stderr=f"stderr{tag}.txt", prep_stdout=f"stdout-job_prep{tag}.txt",
                    prep_stderr=f"stderr-job_prep{tag}.txt", execution=f"execution-{node_id}.log")


def base_environment() -> dict[str, str]:
    """The agent's environment without any contract variables it may have inherited."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AZ_BATCHAI_")}


def job_environment(address: str, assignment: dict[str, Any], paths: JobPaths) -> dict[str, str]:
    """The job's variables on this node, with its folders created."""
    props = assignment["properties"]
    env = job_variables(os.environ, address, props, assignment["jobOutputDirectoryPathSegment"], paths)
    env["AZ_BATCHAI_NUM_GPUS"] = str(gpu_count())
    for path in (paths.mount_root, paths.job_mount_root, paths.temp, paths.shared_temp):
        path.mkdir(parents=True, exist_ok=True)
    Path(env["AZ_BATCHAI_STDOUTERR_DIR"]).mkdir(parents=True, exist_ok=True)
    for item in props.get("outputDirectories") or []:
        Path(env[f"AZ_BATCHAI_OUTPUT_{item['id']}"]).mkdir(parents=True, exist_ok=True)
    return env


def setup_environment(node_dir: Path, address: str, task: dict[str, Any]) -> dict[str, str]:
    """The setup task's variables: the mount root, its own variables and secrets."""
    env = base_environment()
    env.update({"AZ_BATCHAI_MOUNT_ROOT": str(node_dir / "mounts"), "AZ_BATCHAI_NODE_IP": address,
                "AZ_BATCHAI_NUM_GPUS": str(gpu_count()), "AZ_BATCHAI_JOB_TEMP_DIR": str(node_dir / "jobs")})
    env.update(own_variables(task))
    return env
