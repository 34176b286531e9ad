"""`batchai demo`: start a local host in a fresh folder and walk through the API, showing each answer."""

from __future__ import annotations

import json
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


def _steps() -> list[tuple[str, str, str, dict[str, Any] | None]]:
    cluster_id = f"{WORKSPACE}/clusters/demo_cluster"
    return [
        ("Create a workspace", "PUT", WORKSPACE, {"location": "local", "tags": {"team": "vision"}}),
        ("Create a 2-node cluster", "PUT", f"{WORKSPACE}/clusters/demo_cluster", {"properties": {
            "vmSize": "STANDARD_D2_V2",
            "scaleSettings": {"manual": {"targetNodeCount": 2}},
            "userAccountSettings": {"adminUserName": "demo", "adminUserPassword": "never shown again"},
        }}),
        ("Create an experiment", "PUT", f"{WORKSPACE}/experiments/demo_experiment", None),
        ("Submit a job (the secret is accepted, never returned)", "PUT",
         f"{WORKSPACE}/experiments/demo_experiment/jobs/hello", {"properties": {
             "cluster": {"id": cluster_id},
             "nodeCount": 1,
             "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
             "customToolkitSettings": {"commandLine": "echo hello from $AZ_BATCHAI_JOB_TEMP"},
             "secrets": [{"name": "TOKEN", "value": "s3cr3t"}],
         }}),
        ("Watch it: queued, then running on a node of the cluster, then succeeded", "WAIT",
         f"{WORKSPACE}/experiments/demo_experiment/jobs/hello", None),
        ("See the cluster's nodes", "GET", cluster_id, None),
        ("List the experiment's jobs", "GET", f"{WORKSPACE}/experiments/demo_experiment/jobs", None),
        ("Ask for something that does not exist", "GET", f"{WORKSPACE}/clusters/nope", None),
        ("Send a job with two toolkits", "PUT", f"{WORKSPACE}/experiments/demo_experiment/jobs/bad", {"properties": {
            "cluster": {"id": cluster_id}, "nodeCount": 1, "stdOutErrPathPrefix": "/tmp",
            "customToolkitSettings": {"commandLine": "true"},
            "pyTorchSettings": {"pythonScriptFilePath": "train.py"},
        }}),
        ("Delete the workspace, and everything in it", "DELETE", WORKSPACE, None),
    ]


def _watch(console: Console, client: httpx.Client, path: str, timeout: float = 60) -> None:
    """Poll the job until it ends, printing each state it passes through."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(path).json()["properties"]["executionState"]
        if state != seen:
            console.print(f"  executionState: [bold]{state}[/]")
            seen = state
        if state in ("succeeded", "failed"):
            return
        time.sleep(0.05)


def run(console: Console | None = None) -> None:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="batchai-demo-") as folder:
        console.rule("[bold]Batch AI, rebuilt — demo")
        host = start_local_host(Path(folder) / "state")
        console.print(f"Local host started (pid {host.pid}) at [bold]{host.endpoint}[/]")
        try:
            with httpx.Client(base_url=host.endpoint, params=API, timeout=30) as client:
                for title, method, path, body in _steps():
                    console.rule(title)
                    shown = "GET, until it ends:" if method == "WAIT" else method
                    console.print(f"[bold cyan]{shown}[/] {path}?api-version=2018-05-01")
                    if body is not None:
                        console.print(Syntax(json.dumps(body, indent=2), "json", word_wrap=True))
                    if method == "WAIT":
                        _watch(console, client, path)
                        method = "GET"
                    answer = client.request(method, path, json=body)
                    console.print(f"[bold]→ {answer.status_code} {answer.reason_phrase}[/]")
                    if answer.content:
                        console.print(Syntax(json.dumps(answer.json(), indent=2), "json", word_wrap=True))
        finally:
            code = host.stop()
            console.rule(f"Local host stopped (exit code {code})")
