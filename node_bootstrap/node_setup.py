"""Setting a node up when it joins its cluster (or its agent restarts): mount the cluster's volumes
under $AZ_BATCHAI_MOUNT_ROOT, then run the setup task, whose stdout, stderr and execution log go to
`<stdOutErrPathPrefix>/<stdOutErrPathSuffix>/<node id>/`. A failure makes the node unusable, with
an error the cluster shows; the setup task's secrets reach its process and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path
from node_bootstrap.execution_log import ExecutionLog
from node_bootstrap.launch import JobProblem, make_folder, setup_environment
from node_bootstrap.storage import NodeStorage
from shared.models.agent import NodeSetupAnswer, Problem
from shared.volumes import expand

SETUP_TIMEOUT_SECONDS = 3600.0


def set_up_node(node_dir: Path, address: str, setup: NodeSetupAnswer, storage: NodeStorage) -> Problem | None:
    """None when the node is ready, else the error that makes it unusable."""
    node_id = setup.node_id
    volumes = [v.volume() for v in setup.volumes]
    mount_root = node_dir / "mounts"
    mount_root.mkdir(parents=True, exist_ok=True)
    errors = storage.mount(volumes, mount_root, cluster_level=True)
    task = setup.setup_task
    log: ExecutionLog | None = None
    if task is not None:
        env = setup_environment(node_dir, address, task)
        out_dir = Path(expand(task.std_out_err_path_prefix, env)) / (task.std_out_err_path_suffix or "") / node_id
        try:
            make_folder(str(out_dir), "InvalidStdOutErrPath", "properties.nodeSetup.setupTask.stdOutErrPathPrefix "
                                                              f"{task.std_out_err_path_prefix!r}")
        except JobProblem as problem:
            return Problem.of(problem.code, f"The setup task cannot run: {problem.message}")
        log = ExecutionLog(out_dir / "execution.log")
        log.write(f"node {node_id} ({address}) set up: {len(volumes)} volume(s)")
    if errors:
        message = "Mounting the cluster's volumes failed: " + "; ".join(errors)
        if log:
            log.write(message)
        return Problem.of("NodeSetupFailed", message)
    if task is None:
        return None
    assert log is not None
    log.write(f"setup task: {task.command_line}")
    try:
        with (out_dir / "stdout.txt").open("ab") as out, (out_dir / "stderr.txt").open("ab") as err:
            code = subprocess.run(["/bin/bash", "-c", task.command_line], env=env, cwd=node_dir,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  timeout=SETUP_TIMEOUT_SECONDS).returncode
    except subprocess.TimeoutExpired:
        code = 124
    log.write(f"setup task exited with code {code}")
    storage.push()
    if code != 0:
        return Problem.of("SetupTaskFailed", f"The setup task exited with code {code}; its output is in {out_dir}.")
    return None
