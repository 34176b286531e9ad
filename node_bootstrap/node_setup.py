"""Setting a node up when it joins its cluster (or its agent restarts): mount the cluster's volumes
under $AZ_BATCHAI_MOUNT_ROOT, then run the setup task, whose stdout, stderr and execution log go to
`<stdOutErrPathPrefix>/<stdOutErrPathSuffix>/<node id>/`. A failure makes the node unusable, with
an error the cluster shows; the setup task's secrets reach its process and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from node_bootstrap.execution_log import ExecutionLog
from node_bootstrap.launch import JobProblem, make_folder, setup_environment
from node_bootstrap.storage import NodeStorage
from shared.volumes import Volume, expand

SETUP_TIMEOUT_SECONDS = 3600.0


def set_up_node(node_dir: Path, address: str, setup: dict[str, Any], storage: NodeStorage) -> dict[str, str] | None:
    """None when the node is ready, else the error that makes it unusable."""
    node_id = setup["nodeId"]
    volumes = [Volume.from_wire(v) for v in setup.get("volumes") or []]
    mount_root = node_dir / "mounts"
    mount_root.mkdir(parents=True, exist_ok=True)
    errors = storage.mount(volumes, mount_root, cluster_level=True)
    task = setup.get("setupTask")
    log: ExecutionLog | None = None
    if task is not None:
        env = setup_environment(node_dir, address, task)
        out_dir = Path(expand(task["stdOutErrPathPrefix"], env)) / task["stdOutErrPathSuffix"] / node_id
        try:
            make_folder(str(out_dir), "InvalidStdOutErrPath", "properties.nodeSetup.setupTask.stdOutErrPathPrefix "
                                                              f"{task['stdOutErrPathPrefix']!r}")
        except JobProblem as problem:
            return {"code": problem.code, "message": f"The setup task cannot run: {problem.message}"}
        log = ExecutionLog(out_dir / "execution.log")
        log.write(f"node {node_id} ({address}) set up: {len(volumes)} volume(s)")
    if errors:
        message = "Mounting the cluster's volumes failed: " + "; ".join(errors)
        if log:
            log.write(message)
        return {"code": "NodeSetupFailed", "message": message}
    if task is None:
        return None
    assert log is not None
    log.write(f"setup task: {task['commandLine']}")
    try:
        with (out_dir / "stdout.txt").open("ab") as out, (out_dir / "stderr.txt").open("ab") as err:
            code = subprocess.run(["/bin/bash", "-c", task["commandLine"]], env=env, cwd=node_dir, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=SETUP_TIMEOUT_SECONDS).returncode
    except subprocess.TimeoutExpired:
        code = 124
    log.write(f"setup task exited with code {code}")
    storage.push()
    if code != 0:
        return {"code": "SetupTaskFailed",
                "message": f"The setup task exited with code {code}; its output is in {out_dir}."}
    return None
