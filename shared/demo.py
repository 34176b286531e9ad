"""`batchai demo`: the product's main job on the embedded defaults. It starts a local host in a fresh
folder, creates a 2-node cluster with a file share on every node, runs a distributed PyTorch (gloo)
training that learns to tell two spirals apart, shows its stdout while it runs, and lists and
downloads its outputs (the trained model) at the end."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.syntax import Syntax

from shared.localhost.process import start_local_host

API = {"api-version": "2018-05-01"}
WORKSPACE = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo/providers/Microsoft.BatchAI" \
            "/workspaces/demo_workspace"
CLUSTER = f"{WORKSPACE}/clusters/demo_cluster"
JOB = f"{WORKSPACE}/experiments/demo_experiment/jobs/spirals"
ACCOUNT, SHARE = "demostorage", "batchai"
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "pytorch" / "train.py"


def cluster_body() -> dict[str, Any]:
    return {"properties": {
        "vmSize": "STANDARD_D2_V2",
        "scaleSettings": {"manual": {"targetNodeCount": 2}},
        "userAccountSettings": {"adminUserName": "demo", "adminUserPassword": "never shown again"},
        "nodeSetup": {"mountVolumes": {"azureFileShares": [{
            "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
            "credentials": {"accountKey": "a storage key, never shown again"}, "relativeMountPath": "afs"}]}},
    }}


def job_body(epochs: int = 60) -> dict[str, Any]:
    return {"properties": {
        "cluster": {"id": CLUSTER},
        "nodeCount": 2,
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
        "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_MOUNT_ROOT/afs/scripts/train.py",
                            "commandLineArgs": f"--world-size 2 --epochs {epochs}", "processCount": 2},
    }}


class Demo:
    def __init__(self, console: Console, client: httpx.Client) -> None:
        self.console, self.client = console, client

    def call(self, title: str, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, show: bool = True) -> httpx.Response:
        self.console.rule(title)
        self.console.print(f"[bold cyan]{method}[/] {path}?api-version=2018-05-01")
        if body is not None:
            self.console.print(Syntax(json.dumps(body, indent=2), "json", word_wrap=True))
        answer = self.client.request(method, path, json=body, params={**API, **(params or {})})
        self.console.print(f"[bold]→ {answer.status_code} {answer.reason_phrase}[/]")
        if show and answer.content:
            self.console.print(Syntax(json.dumps(answer.json(), indent=2), "json", word_wrap=True))
        answer.raise_for_status()
        return answer

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        self.console.rule("The cluster's nodes start (local agent processes), mount the share and turn idle")
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            counts = self.client.get(CLUSTER, params=API).json()["properties"].get("nodeStateCounts", {})
            if counts != seen:
                self.console.print(f"  nodeStateCounts: {counts}")
                seen = counts
            if counts.get("idleNodeCount") == count:
                return
            time.sleep(0.2)
        raise TimeoutError("the cluster's nodes did not become idle")

    def follow(self, timeout: float = 600) -> dict[str, Any]:
        """Print the job's state changes and its stdout as it grows, until the job ends."""
        self.console.rule("Watch it run: its stdout.txt, read through listOutputFiles while the job runs")
        deadline, state, printed = time.monotonic() + timeout, "", 0
        while time.monotonic() < deadline:
            job = self.client.get(JOB, params=API).json()
            if job["properties"]["executionState"] != state:
                state = job["properties"]["executionState"]
                self.console.print(f"  executionState: [bold]{state}[/]")
            text = self.stdout()
            if len(text) > printed:
                self.console.print(text[printed:], end="", markup=False, highlight=False)
                printed = len(text)
            if state in ("succeeded", "failed"):
                return job
            time.sleep(0.5)
        raise TimeoutError("the job did not end in time")

    def stdout(self, name: str = "stdout.txt") -> str:
        files = self.client.post(f"{JOB}/listOutputFiles", params={**API, "outputdirectoryid": "stdouterr"})
        url = next((f["downloadUrl"] for f in files.json().get("value", []) if f["name"] == name), None)
        return httpx.get(url).text if url else ""


def run(console: Console | None = None, output_dir: Path = Path("demo-output"), epochs: int = 60) -> None:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="batchai-demo-") as folder:
        console.rule("[bold]Batch AI, rebuilt — demo: distributed PyTorch training on a local 2-node cluster")
        state = Path(folder) / "state"
        share = state / "storage" / "fileshares" / ACCOUNT / SHARE  # the local stand-in for the Azure share
        (share / "scripts").mkdir(parents=True)
        shutil.copy(TRAIN_SCRIPT, share / "scripts" / "train.py")
        console.print(f"Uploaded the training script to the file share {ACCOUNT}/{SHARE} (locally: {share})")
        host = start_local_host(state)
        console.print(f"Local host started (pid {host.pid}) at [bold]{host.endpoint}[/]")
        try:
            with httpx.Client(base_url=host.endpoint, timeout=30) as client:
                demo = Demo(console, client)
                demo.call("Create a workspace", "PUT", WORKSPACE, {"location": "local"})
                demo.call("Create a 2-node cluster; every node mounts the share at $AZ_BATCHAI_MOUNT_ROOT/afs",
                          "PUT", CLUSTER, cluster_body())
                demo.wait_for_nodes(2)
                demo.call("Create an experiment", "PUT", f"{WORKSPACE}/experiments/demo_experiment", show=False)
                demo.call("Submit the training: 2 PyTorch processes on 2 nodes, meeting over gloo", "PUT", JOB,
                          job_body(epochs), show=False)
                job = demo.follow()
                console.print(Syntax(json.dumps(job["properties"]["executionInfo"], indent=2), "json"))
                outputs = demo.call("List the job's outputs (the MODEL output directory)", "POST",
                                    f"{JOB}/listOutputFiles", params={"outputdirectoryid": "MODEL"}).json()["value"]
                output_dir.mkdir(parents=True, exist_ok=True)
                console.rule("Download them through their download URLs")
                for entry in outputs:
                    if entry["fileType"] == "file":
                        target = output_dir / entry["name"]
                        target.write_bytes(httpx.get(entry["downloadUrl"]).content)
                        console.print(f"  {entry['name']}: {target.stat().st_size} bytes → {target}")
                if job["properties"]["executionState"] != "succeeded":
                    console.rule("The job failed: its stderr.txt")
                    console.print(demo.stdout("stderr.txt"), markup=False, highlight=False)
                    raise SystemExit("the training job failed")
        finally:
            code = host.stop()
            console.rule(f"Local host stopped (exit code {code})")
