"""`batchai demo`: the product's main job on the embedded defaults, driven by `batchai` commands as
a user would type them. It starts a local host in a fresh folder, creates a 2-node cluster with a
file share on every node, submits a distributed PyTorch (gloo) training from a Batch AI style job
file, follows its stdout while it runs, and lists and downloads its outputs (the trained model).
Each command is printed before it runs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.syntax import Syntax

from shared.localhost.process import start_local_host

ACCOUNT, SHARE = "demostorage", "batchai"
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "pytorch" / "train.py"


def job_file(epochs: int = 60) -> dict[str, Any]:
    """The job, as Batch AI's config files wrote it: the nodes expand the $AZ_BATCHAI_ variables."""
    return {"properties": {
        "nodeCount": 2,
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
        "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_MOUNT_ROOT/afs/scripts/train.py",
                            "commandLineArgs": f"--world-size 2 --epochs {epochs}", "processCount": 2},
    }}


class Shell:
    """Runs `batchai ...` in the demo's folder, where the local host keeps its state, so that the
    command finds the host by itself; prints each command first."""

    def __init__(self, console: Console, folder: Path, env: dict[str, str]) -> None:
        self.console, self.folder, self.env = console, folder, env

    def run(self, title: str, *args: str, check: bool = True) -> int:
        self.console.rule(title)
        self.console.print(f"[bold green]$[/] batchai {shlex.join(args)}", highlight=False)
        done = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=self.folder, env=self.env)
        if check and done.returncode != 0:
            raise SystemExit(f"`batchai {args[0]} {args[1]}` failed (exit code {done.returncode})")
        return done.returncode


def run(console: Console | None = None, output_dir: Path = Path("demo-output"), epochs: int = 60) -> None:
    console = console or Console()
    output_dir = output_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="batchai-demo-") as tmp:
        folder = Path(tmp)
        console.rule("[bold]Batch AI, rebuilt — demo: distributed PyTorch training on a local 2-node cluster")
        state = folder / ".batchai"  # where `batchai local up` keeps its state when started in `folder`
        share = state / "storage" / "fileshares" / ACCOUNT / SHARE  # the local stand-in for the Azure share
        (share / "scripts").mkdir(parents=True)
        shutil.copy(TRAIN_SCRIPT, share / "scripts" / "train.py")
        console.print(f"Uploaded the training script to the file share {ACCOUNT}/{SHARE} (locally: {share})")
        host = start_local_host(state)
        console.print(f"Local host started (pid {host.pid}) at [bold]{host.endpoint}[/], state in {state}")
        # The demo's own CLI settings (not yours), and the storage key the nodes mount the share with:
        # from the environment, so that it appears in no command line and no output.
        env = {**os.environ, "BATCHAI_CONFIG_FILE": str(folder / "cli-config"),
               "AZURE_BATCHAI_STORAGE_ACCOUNT": ACCOUNT, "AZURE_BATCHAI_STORAGE_KEY": "a storage key, never shown"}
        for name in ("BATCHAI_ENDPOINT", "BATCHAI_RESOURCE_GROUP", "BATCHAI_WORKSPACE", "BATCHAI_DATA_DIR"):
            env.pop(name, None)
        sh = Shell(console, folder, env)
        try:
            sh.run("Defaults for the commands below (the endpoint is found: the local host in this folder)",
                   "configure", "--resource-group", "demo", "--workspace", "demo_workspace")
            sh.run("Create a workspace", "workspace", "create", "--name", "demo_workspace")
            console.print(f"[dim](AZURE_BATCHAI_STORAGE_ACCOUNT={ACCOUNT} and AZURE_BATCHAI_STORAGE_KEY are set "
                          "in the environment)[/]")
            sh.run("Create a 2-node cluster; every node mounts the share at $AZ_BATCHAI_MOUNT_ROOT/afs",
                   "cluster", "create", "--name", "demo_cluster", "--vm-size", "STANDARD_D2_V2", "--target", "2",
                   "--user-name", "demo", "--afs-name", SHARE, "--afs-mount-path", "afs")
            sh.run("Create an experiment", "experiment", "create", "--name", "demo_experiment")
            job = folder / "job.json"
            job.write_text(json.dumps(job_file(epochs), indent=2))
            console.rule("The job, in Batch AI's config file format: 2 PyTorch processes on 2 nodes, over gloo")
            console.print(Syntax(job.read_text(), "json", word_wrap=True))
            sh.run("Submit it: it queues until both nodes have mounted the share and are idle",
                   "job", "create", "--name", "spirals", "--experiment", "demo_experiment",
                   "--cluster", "demo_cluster", "--config-file", "job.json")
            sh.run("Follow the stdout of its rank 0 while it runs (it ends when the job does)",
                   "job", "file", "stream", "--job", "spirals", "--experiment", "demo_experiment",
                   "--file-name", "stdout-0.txt")
            sh.run("How it ended", "job", "show", "--name", "spirals", "--experiment", "demo_experiment")
            succeeded = sh.run("Wait for it (here: it already ended; exit code 0 means it succeeded)",
                               "job", "wait", "--name", "spirals", "--experiment", "demo_experiment",
                               check=False) == 0
            if not succeeded:
                sh.run("It failed: the stderr of its rank 0", "job", "file", "stream", "--job", "spirals",
                       "--experiment", "demo_experiment", "--file-name", "stderr-0.txt")
                raise SystemExit("the training job failed")
            sh.run("List its outputs (the MODEL output directory)", "job", "file", "list", "--job", "spirals",
                   "--experiment", "demo_experiment", "--output-directory-id", "MODEL")
            sh.run("Download them", "job", "file", "download", "--job", "spirals", "--experiment",
                   "demo_experiment", "--output-directory-id", "MODEL", "--dest", str(output_dir))
        finally:
            code = host.stop()
            console.rule(f"Local host stopped (exit code {code})")
