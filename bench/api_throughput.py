"""Job-create throughput of the API on the local host: requests/s and p50/p99 latency with N
concurrent clients, each keeping one connection open (as SDK clients do).

    python bench/api_throughput.py [--clients 16] [--jobs 3000] [--workers N] [--no-slurm]

Two cases, both printed: jobs on a cluster with no nodes (each is stored and failed at once as
ClusterTooSmall: the API's own cost), and the realistic one — jobs that queue behind a busy node
(each is stored, joins its lane and wakes the dispatcher). The host runs `--workers` instances
(`batchai local up --workers`, default: the machine's cores).

Beside it, in the same run, Slurm's `sbatch` submit rate on the same machine (slurm_peer.py), when
Debian's slurm-wlm can be installed (earlier runs here: 230 to 290 jobs per second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))  # slurm_peer beside this file

from slurm_peer import LocalSlurm, SlurmUnavailable, ensure_installed, install_problem  # noqa: E402

import httpx  # noqa: E402

from shared.localhost.process import start_local_host  # noqa: E402

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/ws"
Q = {"api-version": "2018-05-01"}
SLURM_SBATCH_PER_S = (230, 290)
TARGET_PER_S = 300


CASES = {"c": "no nodes (fails at once)", "busy": "queued behind a busy node"}


def job_body(n: int, cluster: str = "c") -> dict[str, object]:
    return {"properties": {
        "cluster": {"id": f"{WS}/clusters/{cluster}"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
        "schedulingPriority": ("low", "normal", "high")[n % 3],
        "customToolkitSettings": {"commandLine": f"echo job {n}"},
        "environmentVariables": [{"name": "N", "value": str(n)}],
    }}


async def setup(session: aiohttp.ClientSession) -> None:
    for path, body in ((WS, {"location": "local"}),
                       (WS + "/clusters/c", {"properties": {"vmSize": "STANDARD_D1_V2",
                                                            "userAccountSettings": {"adminUserName": "u",
                                                                                    "adminUserPassword": "p"}}}),
                       (WS + "/experiments/e", None)):
        async with session.put(path, params=Q, json=body) as answer:
            assert answer.status == 200, await answer.text()


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, "
            f"p99 {ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000:.1f} ms")


def make_busy_cluster(endpoint: str, headers: dict[str, str], timeout: float = 120) -> None:
    """Cluster "busy": one node, held by a job that sleeps, so every job sent to it queues."""
    with httpx.Client(base_url=endpoint, params=Q, headers=headers, timeout=30) as http:
        http.put(f"{WS}/clusters/busy", json={"properties": {
            "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
            "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}).raise_for_status()
        http.put(f"{WS}/experiments/e/jobs/blocker", json={"properties": {
            "cluster": {"id": f"{WS}/clusters/busy"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "customToolkitSettings": {"commandLine": "sleep 3600"}}}).raise_for_status()
        deadline = time.monotonic() + timeout
        while http.get(f"{WS}/experiments/e/jobs/blocker").json()["properties"]["executionState"] != "running":
            if time.monotonic() > deadline:
                raise TimeoutError("the busy cluster's node did not start its job")
            time.sleep(0.2)


async def client(session: aiohttp.ClientSession, ids: list[int], latencies: list[float], cluster: str = "c") -> None:
    while ids:
        n = ids.pop()
        started = time.perf_counter()
        async with session.put(f"{WS}/experiments/e/jobs/{cluster}-{n}", params=Q, json=job_body(n, cluster)) as answer:
            await answer.read()
            assert answer.status == 200, answer.status
        latencies.append(time.perf_counter() - started)


async def measure(endpoint: str, headers: dict[str, str], clients: int, jobs: int, cluster: str
                  ) -> tuple[float, list[float]]:
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(endpoint, connector=connector, headers=headers) as session:
        warmup: list[float] = []
        await asyncio.gather(*(client(session, list(range(-200 + i, 0, clients)), warmup, cluster)
                               for i in range(clients)))
        ids = list(range(jobs))
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(client(session, ids, latencies, cluster) for _ in range(clients)))
        return time.perf_counter() - started, latencies


async def prepare(endpoint: str, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(endpoint, headers=headers) as session:
        await setup(session)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="host instances")
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm peer")
    args = parser.parse_args()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="batchai-bench-") as folder:
        host = start_local_host(Path(folder) / "state", workers=args.workers, timeout=60 + 30 * args.workers)
        try:
            asyncio.run(prepare(host.endpoint, host.headers))
            make_busy_cluster(host.endpoint, host.headers)
            for cluster, label in CASES.items():
                elapsed, latencies = asyncio.run(measure(host.endpoint, host.headers, args.clients, args.jobs, cluster))
                rates[cluster] = len(latencies) / elapsed
                print(f"job creates, {label}: {len(latencies)} with {args.clients} clients, {args.workers} host "
                      f"instances, in {elapsed:.2f} s: {rates[cluster]:.0f}/s (target >= {TARGET_PER_S}), "
                      f"{percentiles(latencies)}", flush=True)
        finally:
            host.stop(30)
    if args.no_slurm:
        return
    sbatch = slurm_submit_rate(args.clients)
    if isinstance(sbatch, str):
        print(f"vs sbatch:   Slurm not available here ({sbatch}); earlier runs: "
              f"{SLURM_SBATCH_PER_S[0]}-{SLURM_SBATCH_PER_S[1]}/s")
    else:
        print(f"vs sbatch:   Slurm's sbatch {sbatch:.0f} submits/s here with {args.clients} submitters, same run: "
              + ", ".join(f"{CASES[c]} {rates[c] / sbatch:.2f}x" for c in CASES))


def slurm_submit_rate(submitters: int, jobs: int = 400) -> float | str:
    """sbatch submissions per second on a private Slurm (8 slots), or why there is none."""
    if not ensure_installed():
        return install_problem()
    with tempfile.TemporaryDirectory(prefix="slurm-peer-") as folder:
        try:
            with LocalSlurm(8, Path(folder)) as slurm:
                slurm._submit_many(20, submitters)  # warm the controller
                return slurm.submit_rate(jobs, submitters)
        except SlurmUnavailable as error:
            return str(error)


if __name__ == "__main__":
    main()
