"""What a job sees on a node (reference/ENVIRONMENT.md): its folders and its variables. Pure: the
node agent creates the folders; the control plane computes the same paths to find a job's files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.models.common import EnvironmentVariable, EnvironmentVariableWithSecretValue
from shared.models.job import JobBaseProperties, OutputDirectory
from shared.volumes import expand


class Variables(Protocol):
    """What a job's properties and a cluster's setup task share: their variables and secrets."""

    @property
    def environment_variables(self) -> Sequence[EnvironmentVariable] | None: ...

    @property
    def secrets(self) -> Sequence[EnvironmentVariableWithSecretValue] | None: ...


@dataclass(frozen=True)
class JobPaths:
    """The node-local folders of one attempt (a later attempt starts from clean ones)."""

    mount_root: Path  # the cluster's volumes
    job_mount_root: Path  # the job's own volumes
    temp_dir: Path  # all jobs' temporary folders
    temp: Path
    shared_temp: Path
    hostfile: Path

    @classmethod
    def of(cls, node_dir: Path, segment: str, attempt: int) -> JobPaths:
        name = f"{segment.replace('/', '_')}-{attempt}"
        attempt_dir = node_dir / "jobs" / name
        # Locally the nodes are folders of one pool, so a folder beside them is seen by all of them.
        return cls(mount_root=node_dir / "mounts", job_mount_root=attempt_dir / "mounts", temp_dir=node_dir / "jobs",
                   temp=attempt_dir / "temp", shared_temp=node_dir.parent / "shared" / name,
                   hostfile=attempt_dir / "hostfile")


def job_variables(base: Mapping[str, str], address: str, props: JobBaseProperties, segment: str,
                  paths: JobPaths) -> dict[str, str]:
    """Every variable of ENVIRONMENT.md plus the job's own (and its secrets), over `base`."""
    env = {k: v for k, v in base.items() if not k.startswith("AZ_BATCHAI_")}
    env.update({
        "AZ_BATCHAI_MOUNT_ROOT": str(paths.mount_root),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": str(paths.job_mount_root),
        "AZ_BATCHAI_JOB_TEMP_DIR": str(paths.temp_dir),
        "AZ_BATCHAI_JOB_TEMP": str(paths.temp),
        "AZ_BATCHAI_SHARED_JOB_TEMP": str(paths.shared_temp),
        "AZ_BATCHAI_MPI_HOST_FILE": str(paths.hostfile),
        "AZ_BATCHAI_NUM_GPUS": "0",
        "AZ_BATCHAI_NODE_IP": address,
    })
    env.update(own_variables(props))
    env["AZ_BATCHAI_STDOUTERR_DIR"] = str(stdouterr_dir(props, segment, env))
    for given in props.input_directories or ():
        env[f"AZ_BATCHAI_INPUT_{given.id}"] = expand(given.path, env)
    for item in props.output_directories or ():
        env[f"AZ_BATCHAI_OUTPUT_{item.id}"] = str(output_dir(item, segment, env))
    return env


def own_variables(settings: Variables) -> dict[str, str]:
    """A job's or setup task's `environmentVariables` and `secrets` (values only reach the process;
    a secret given as a Key Vault reference has none)."""
    variables = {item.name: item.value for item in settings.environment_variables or ()}
    variables.update({item.name: item.value for item in settings.secrets or () if item.value is not None})
    return variables


def stdouterr_dir(props: JobBaseProperties, segment: str, env: Mapping[str, str]) -> Path:
    return Path(expand(props.std_out_err_path_prefix, env)) / segment / "stdouterr"


def output_dir(item: OutputDirectory, segment: str, env: Mapping[str, str]) -> Path:
    """`<pathPrefix>/<jobOutputDirectoryPathSegment>/<pathSuffix>`, expanded."""
    return Path(expand(item.path_prefix, env)) / segment / expand(item.path_suffix or "", env)
