"""Parameter sweeps on the local host with real agents: the service's sweep beside a client loop.

    python bench/sweep.py [--nodes 8] [--trials 64] [--seconds 1.0]

Prints:
- a T-trial random sweep of a short script (it sleeps --seconds, then prints its score) on an
  N-node cluster, at most N trials at a time: the time from the sweep's create to its last trial's
  end, the nodes' busy fraction (the trials' run times over N x that time) and the overhead per
  trial (N x makespan / T - the script's own time);
- the same T jobs submitted one by one by a client loop in the style of Batch AI's utilities
  (substitute the parameters, PUT each job, poll every job until all have ended, then read each
  job's score from its stdout through listOutputFiles): the same three figures;
- a sweep whose trials report an accuracy at each of 10 steps, with and without median stopping
  (the same seed, so the same parameters): when each first reached the best final value of the
  sweep without stopping, and when each ended.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.localhost.process import start_local_host  # noqa: E402

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/ws"
EXP = f"{WS}/experiments/e"
Q = {"api-version": "2018-05-01"}
ACCOUNT, SHARE = "benchstorage", "share"
AFS = "$AZ_BATCHAI_MOUNT_ROOT/afs"


def when(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def make_cluster(http: httpx.Client, nodes: int) -> None:
    body = {"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": nodes}},
        "userAccountSettings": {"adminUserName": "bench", "adminUserPassword": "bench"},
        "nodeSetup": {"mountVolumes": {"azureFileShares": [{
            "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
            "credentials": {"accountKey": "key"}, "relativeMountPath": "afs"}]}}}}
    http.put(WS, json={"location": "local"}).raise_for_status()
    http.put(EXP, json={}).raise_for_status()
    http.put(f"{WS}/clusters/c", json=body).raise_for_status()
    deadline = time.monotonic() + 180
    while http.get(f"{WS}/clusters/c").json()["properties"]["nodeStateCounts"]["idleNodeCount"] < nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not get {nodes} idle nodes")
        time.sleep(0.2)


def template(command: str) -> dict[str, Any]:
    return {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": AFS,
            "customToolkitSettings": {"commandLine": command}}


X = {"paramType": "NumParam", "parameterName": "X", "dataType": "REAL", "start": 0.0, "end": 1.0, "scale": "LINEAR"}


def run_sweep(http: httpx.Client, name: str, command: str, trials: int, nodes: int, regex: str,
              stopping: dict[str, Any] | None = None) -> tuple[float, list[dict[str, Any]]]:
    props: dict[str, Any] = {
        "jobTemplate": template(command), "parameters": [X], "sampling": {"algorithm": "random", "seed": 11},
        "objective": {"metricName": "score", "goal": "maximize", "regex": regex, "logFile": "stdout.txt"},
        "budget": {"maxTrials": trials, "maxConcurrentTrials": nodes}}
    if stopping:
        props["earlyTermination"] = stopping
    started = time.time()
    http.put(f"{EXP}/sweeps/{name}", json={"properties": props}).raise_for_status()
    while http.get(f"{EXP}/sweeps/{name}").json()["properties"]["executionState"] == "running":
        time.sleep(0.5)
    return started, http.get(f"{EXP}/sweeps/{name}/trials").json()["value"]


def job_times(http: httpx.Client, names: list[str]) -> list[tuple[float, float]]:
    out = []
    for name in names:
        info = http.get(f"{EXP}/jobs/{name}").json()["properties"].get("executionInfo") or {}
        if info.get("startTime") and info.get("endTime"):
            out.append((when(info["startTime"]), when(info["endTime"])))
    return out


def figures(label: str, started: float, times: list[tuple[float, float]], nodes: int, trials: int,
            own: float) -> None:
    makespan = max(end for _, end in times) - started
    busy = sum(end - start for start, end in times) / (nodes * makespan)
    overhead = nodes * makespan / trials - own
    print(f"{label:<34} {makespan:7.1f} s   busy {busy:6.1%}   overhead/trial {overhead:5.2f} s")


def client_loop(http: httpx.Client, command: str, trials: int, seconds: float) -> tuple[float, list[tuple[float, float]]]:
    """The utilities' way: generate, submit each job, wait for all, then read each metric."""
    import random

    rng = random.Random(11)
    started = time.time()
    names = []
    for n in range(trials):
        x = rng.uniform(0, 1)
        body = {"properties": template(command.replace("{{X}}", f"{x:.6f}")) |
                {"environmentVariables": [{"name": "PARAM_X", "value": f"{x:.6f}"}]}}
        name = f"loop-{n:04d}"
        http.put(f"{EXP}/jobs/{name}", json=body).raise_for_status()
        names.append(name)
    while True:  # wait_all_jobs: poll the experiment's jobs
        states = [j["properties"]["executionState"] for j in http.get(f"{EXP}/jobs").json()["value"]
                  if j["name"].startswith("loop-")]
        if len(states) == trials and all(s in ("succeeded", "failed") for s in states):
            break
        time.sleep(1.0)
    for name in names:  # MetricExtractor: list the job's files, download its log, regex it
        files = http.post(f"{EXP}/jobs/{name}/listOutputFiles", params={"outputdirectoryid": "stdouterr"}).json()
        url = next(f["downloadUrl"] for f in files["value"] if f["name"] == "stdout.txt")
        httpx.get(url).raise_for_status()
    finished = time.time()
    times = job_times(http, names)
    return started, [*times, (finished, finished)]  # the loop ends when its metrics are read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        host = start_local_host(Path(tmp) / "state", env={"BATCHAI_HEARTBEAT_SECONDS": "1"})
        try:
            http = httpx.Client(base_url=host.endpoint, params=Q, headers=host.headers, timeout=60)
            make_cluster(http, args.nodes)
            short = f"sleep {args.seconds}; echo score {{{{X}}}}"
            print(f"{args.trials} trials of a {args.seconds:g} s script on {args.nodes} nodes:")
            started, trials = run_sweep(http, "short", short, args.trials, args.nodes, r"score ([0-9.]+)")
            figures("the service's sweep", started, job_times(http, [t["jobName"] for t in trials]),
                    args.nodes, args.trials, args.seconds)
            started, times = client_loop(http, short, args.trials, args.seconds)
            figures("a client loop (utilities' style)", started, times, args.nodes, args.trials, args.seconds)

            curve = ("for s in $(seq 1 10); do awk -v x={{X}} -v s=$s "
                     "'BEGIN{printf \"step %d acc %.4f\\n\", s, x*(1-0.5^s)}'; sleep 1; done")
            regex = r"step (?P<step>\d+) acc (?P<value>[0-9.]+)"
            print(f"\n{args.trials} trials reporting 10 steps each, with and without median stopping:")
            plain_start, plain = run_sweep(http, "plain", curve, args.trials, args.nodes, regex)
            best = max(t["finalMetric"] for t in plain if t["finalMetric"] is not None)
            stop_start, stopped = run_sweep(http, "median", curve, args.trials, args.nodes, regex,
                                            {"policy": "median", "minCompletedTrials": 4, "delayEvaluation": 2})
            for label, start, got in (("without stopping", plain_start, plain), ("median stopping", stop_start, stopped)):
                reached = [when(t["endTime"]) for t in got if t["state"] == "succeeded" and t["finalMetric"] >= best]
                ended = max(when(t["endTime"]) for t in got)
                n_stopped = sum(t["state"] == "stopped" for t in got)
                first = f"{min(reached) - start:6.1f} s" if reached else "   never"
                print(f"{label:<20} best {best:.4f} reached at {first}; all ended at {ended - start:6.1f} s; "
                      f"{n_stopped} trials stopped")
            http.close()
        finally:
            code = host.stop()
            if code:
                print("\n".join(host.output[-20:]))


if __name__ == "__main__":
    main()
