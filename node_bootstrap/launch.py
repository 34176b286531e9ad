"""How a job's process starts on its master node: the environment of ENVIRONMENT.md, its
folders, and the toolkit's command; stdout and stderr go to the job's stdouterr folder."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdouterr: Path
    logs: list[Any] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        self.stdouterr.mkdir(parents=True, exist_ok=True)
        out = open(self.stdouterr / "stdout.txt", "ab")  # noqa: SIM115 - closed in wait()
        err = open(self.stdouterr / "stderr.txt", "ab")  # noqa: SIM115
        self.logs = [out, err]
        return subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)

    def wait(self, process: subprocess.Popen[bytes]) -> int:
        """The exit code (128 + signal number for a process killed by a signal, as a shell says)."""
        code = process.wait()
        for log in self.logs:
            log.close()
        return code if code >= 0 else 128 - code


_VARIABLE = re.compile(r"\$(?:(\w+)|\{(\w+)\})")


def expand(text: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from the job's environment (unknown ones are left as they are)."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def job_environment(node_dir: Path, address: str, assignment: dict[str, Any]) -> dict[str, str]:
    props = assignment["properties"]
    segment = assignment["jobOutputDirectoryPathSegment"]
    attempt_dir = node_dir / "jobs" / f"{segment.replace('/', '_')}-{assignment['attempt']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZ_BATCHAI_")}
    env.update({
        "AZ_BATCHAI_MOUNT_ROOT": str(node_dir / "mounts"),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": str(attempt_dir / "mounts"),
        "AZ_BATCHAI_JOB_TEMP_DIR": str(node_dir / "jobs"),
        "AZ_BATCHAI_JOB_TEMP": str(attempt_dir / "temp"),
        "AZ_BATCHAI_SHARED_JOB_TEMP": str(attempt_dir / "shared"),
        "AZ_BATCHAI_MPI_HOST_FILE": str(attempt_dir / "hostfile"),
        "AZ_BATCHAI_NUM_GPUS": "0",
        "AZ_BATCHAI_NODE_IP": address,
    })
    for name in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
                 "AZ_BATCHAI_SHARED_JOB_TEMP"):
        Path(env[name]).mkdir(parents=True, exist_ok=True)
    Path(env["AZ_BATCHAI_MPI_HOST_FILE"]).write_text(
        "".join(f"{n['address']} slots=1\n" for n in assignment["nodes"]))
    for item in props.get("environmentVariables") or []:
        env[item["name"]] = item["value"]
    for item in props.get("secrets") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
    prefix = expand(props["stdOutErrPathPrefix"], env)
    env["AZ_BATCHAI_STDOUTERR_DIR"] = str(Path(prefix) / segment / "stdouterr")
    for item in props.get("inputDirectories") or []:
        env[f"AZ_BATCHAI_INPUT_{item['id']}"] = expand(item["path"], env)
    for item in props.get("outputDirectories") or []:
        path = Path(expand(item["pathPrefix"], env)) / segment / expand(item.get("pathSuffix") or "", env)
        path.mkdir(parents=True, exist_ok=True)
        env[f"AZ_BATCHAI_OUTPUT_{item['id']}"] = str(path)
    return env


def prepare_launch(node_dir: Path, address: str, assignment: dict[str, Any]) -> Launch:
    env = job_environment(node_dir, address, assignment)
    props = assignment["properties"]
    custom = props.get("customToolkitSettings")
    if custom is not None and custom.get("commandLine"):
        argv = ["/bin/bash", "-c", custom["commandLine"]]
    else:  # the other toolkits' launchers come with the full agent
        argv = ["/bin/bash", "-c", "echo 'this node agent launches customToolkitSettings jobs only' >&2; exit 127"]
    cwd = Path(env["AZ_BATCHAI_JOB_TEMP"])
    return Launch(argv=argv, env=env, cwd=cwd, stdouterr=Path(env["AZ_BATCHAI_STDOUTERR_DIR"]))
