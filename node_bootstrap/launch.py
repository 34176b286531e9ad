"""Launching on a node: the job's environment with its folders made (shared/job_environment.py
computes both), the setup task's environment, and the names of the files output goes to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from shared.job_environment import JobPaths, job_variables, own_variables
from shared.models.agent import Assignment
from shared.models.cluster import SetupTask


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


class JobProblem(Exception):
    """A step of an attempt failed for a reason the job's error names: its code and message
    (which names the field and the OS's error) become the job's `executionInfo.errors`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def job_environment(address: str, assignment: Assignment, paths: JobPaths) -> dict[str, str]:
    """The job's variables on this node, with its folders created; a folder the user's paths make
    impossible (below a regular file, a NUL, no permission) is a JobProblem naming the field."""
    props = assignment.properties
    env = job_variables(os.environ, address, props, assignment.job_output_directory_path_segment, paths)
    for path in (paths.mount_root, paths.job_mount_root, paths.temp, paths.shared_temp):
        path.mkdir(parents=True, exist_ok=True)
    make_folder(env["AZ_BATCHAI_STDOUTERR_DIR"], "InvalidStdOutErrPath",
                f"properties.stdOutErrPathPrefix {props.std_out_err_path_prefix!r}")
    for index, item in enumerate(props.output_directories or ()):
        make_folder(env[f"AZ_BATCHAI_OUTPUT_{item.id}"], "InvalidOutputDirectory",
                    f"properties.outputDirectories[{index}] (id {item.id!r}, pathPrefix {item.path_prefix!r})")
    return env


def make_folder(path: str, code: str, field: str) -> None:
    """Create a folder a user's field names; its failure says which field, which folder and why."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise JobProblem(code, f"cannot create the directory {path!r} of {field}: {os_error(exc, path)}") from exc


def os_error(exc: Exception, named: str = "") -> str:
    """The OS's words for a failure, naming the file only when it is not the one already `named`."""
    if isinstance(exc, OSError) and exc.strerror:
        shown = exc.filename is not None and str(exc.filename) != named
        return f"{exc.strerror} ({str(exc.filename)!r})" if shown else exc.strerror
    return str(exc) or type(exc).__name__


def setup_environment(node_dir: Path, address: str, task: SetupTask) -> dict[str, str]:
    """The setup task's variables: the mount root, its own variables and secrets."""
    env = base_environment()
    env.update({"AZ_BATCHAI_MOUNT_ROOT": str(node_dir / "mounts"), "AZ_BATCHAI_NODE_IP": address,
                "AZ_BATCHAI_NUM_GPUS": "0", "AZ_BATCHAI_JOB_TEMP_DIR": str(node_dir / "jobs")})
    env.update(own_variables(task))
    return env
