"""Launch speed per toolkit: from the job's assignment to the first process of the job, on 1 and 2
nodes of the local host with real agents.

    python bench/launch.py [--samples 3]

Every job runs a tiny Python script that stamps the time it starts, before any import of its own.
The assignment is the attempt's `startTime` (when the dispatcher gave the job its nodes); the
figure is the earliest stamp minus it: the agent's long-poll answer, folders, mounts, mpirun or
the toolkit's process start, and the interpreter's start. Beside it, the same script started
directly (`python3 first.py`) and through a bare `mpirun -np 2`, the peers on this machine: what
is left is what Batch AI adds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from shared.localhost.process import start_local_host

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/launch"
Q = {"api-version": "2018-05-01"}
ACCOUNT, SHARE = "bench", "share"
SCRIPT = "import sys, time, os\nopen(os.path.join(sys.argv[1], f'{time.time():.6f}-{os.getpid()}'), 'w').close()\n"
FIRST = "$AZ_BATCHAI_MOUNT_ROOT/afs/first.py"
STAMPS = "$AZ_BATCHAI_MOUNT_ROOT/afs/stamps"


def toolkits(nodes: int) -> dict[str, dict[str, Any]]:
    args = f"{STAMPS}/$JOB_TAG"
    script = {"pythonScriptFilePath": FIRST, "commandLineArgs": args}
    return {
        "custom": {"customToolkitSettings": {"commandLine": f"python3 {FIRST} {args}"}},
        "customMpi": {"customMpiSettings": {"commandLine": f"python3 {FIRST} {args}", "processCount": nodes}},
        "horovod": {"horovodSettings": script},
        "chainer": {"chainerSettings": script},
        "cntk": {"cntkSettings": {"languageType": "Python", **script}},
        "caffe": {"caffeSettings": script},
        "caffe2": {"caffe2Settings": script},
        "pytorch": {"pyTorchSettings": script},
        "tensorflow": {"tensorFlowSettings": {"pythonScriptFilePath": FIRST, "masterCommandLineArgs": args,
                                              "workerCommandLineArgs": args,
                                              "parameterServerCommandLineArgs": args}},
    }


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_job(http: httpx.Client, share: Path, name: str, nodes: int, settings: dict[str, Any]) -> float:
    (share / "stamps" / name).mkdir(parents=True)
    body = {"cluster": {"id": f"{WS}/clusters/two"}, "nodeCount": nodes, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "environmentVariables": [{"name": "JOB_TAG", "value": name}]} | settings
    http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": body}).raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        props = http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]
        if props["executionState"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"{name} did not end")
    if props["executionState"] != "succeeded":
        raise RuntimeError(f"{name} failed: {props.get('executionInfo')}")
    first = min(float(p.name.split("-")[0]) for p in (share / "stamps" / name).iterdir())
    return first - parse_time(props["executionInfo"]["startTime"])


def direct_peers(folder: Path, samples: int) -> dict[str, list[float]]:
    """The same script without Batch AI: started directly, and through a bare 2-rank mpirun."""
    script = folder / "first.py"
    peers: dict[str, list[float]] = {"python3 directly": [], "mpirun -np 2": []}
    mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self", "-np", "2"]
    for i in range(samples):
        for label, prefix in (("python3 directly", []), ("mpirun -np 2", mpirun)):
            out = folder / f"peer-{label[:6]}-{i}"
            out.mkdir()
            started = time.time()
            subprocess.run([*prefix, sys.executable, str(script), str(out)], check=True, capture_output=True)
            peers[label].append(min(float(p.name.split("-")[0]) for p in out.iterdir()) - started)
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchai-launch-") as folder:
        state = Path(folder) / "state"
        share = state / "storage" / "fileshares" / ACCOUNT / SHARE
        share.mkdir(parents=True)
        (share / "first.py").write_text(SCRIPT)
        host = start_local_host(state)
        results: dict[tuple[str, int], list[float]] = {}
        try:
            with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
                http.put(WS, json={"location": "local"}).raise_for_status()
                http.put(f"{WS}/experiments/e", json={}).raise_for_status()
                http.put(f"{WS}/clusters/two", json={"properties": {
                    "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 2}},
                    "userAccountSettings": {"adminUserName": "b", "adminUserPassword": "b"},
                    "nodeSetup": {"mountVolumes": {"azureFileShares": [{
                        "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
                        "credentials": {"accountKey": "k"}, "relativeMountPath": "afs"}]}}}}).raise_for_status()
                deadline = time.monotonic() + 60
                while http.get(f"{WS}/clusters/two").json()["properties"]["nodeStateCounts"]["idleNodeCount"] < 2:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the nodes did not become idle")
                    time.sleep(0.1)
                for i in range(args.samples):
                    for nodes in (1, 2):
                        for toolkit, settings in toolkits(nodes).items():
                            name = f"{toolkit.lower()}-{nodes}-{i}"
                            results.setdefault((toolkit, nodes), []).append(run_job(http, share, name, nodes, settings))
        finally:
            host.stop()
        peers = direct_peers(share, args.samples) if shutil.which("mpirun") else {}
    print(f"assignment -> first process of the job, median of {args.samples} (ms)")
    print(f"{'toolkit':<12}{'1 node':>10}{'2 nodes':>10}")
    for toolkit in toolkits(1):
        one, two = (statistics.median(results[(toolkit, n)]) * 1000 for n in (1, 2))
        print(f"{toolkit:<12}{one:>10.0f}{two:>10.0f}")
    for label, values in peers.items():
        print(f"peer: {label:<22}{statistics.median(values) * 1000:>8.0f} ms from start to the script's first line")


if __name__ == "__main__":
    main()
