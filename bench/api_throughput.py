"""Job-create throughput of the API on the local host: requests/s and p50/p99 latency with N
concurrent clients, each keeping one connection open (as SDK clients do).

    python bench/api_throughput.py [--clients 16] [--jobs 3000] [--no-slurm]

Beside it, in the same run, Slurm's `sbatch` submit rate on the same machine (slurm_peer.py), when
Debian's slurm-wlm can be installed (earlier runs here: 230 to 290 jobs per second).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))  # slurm_peer beside this file

from slurm_peer import LocalSlurm, SlurmUnavailable, ensure_installed, install_problem  # noqa: E402

from shared.localhost.process import start_local_host  # noqa: E402

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/ws"
Q = {"api-version": "2018-05-01"}
SLURM_SBATCH_PER_S = (230, 290)
TARGET_PER_S = 300


def job_body(n: int) -> dict[str, object]:
    return {"properties": {
        "cluster": {"id": WS + "/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
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


async def client(session: aiohttp.ClientSession, ids: list[int], latencies: list[float]) -> None:
    while ids:
        n = ids.pop()
        started = time.perf_counter()
        async with session.put(f"{WS}/experiments/e/jobs/job-{n}", params=Q, json=job_body(n)) as answer:
            await answer.read()
            assert answer.status == 200, answer.status
        latencies.append(time.perf_counter() - started)


async def measure(endpoint: str, headers: dict[str, str], clients: int, jobs: int) -> tuple[float, list[float]]:
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(endpoint, connector=connector, headers=headers) as session:
        await setup(session)
        warmup: list[float] = []
        await asyncio.gather(*(client(session, list(range(-200 + i, 0, clients)), warmup) for i in range(clients)))
        ids = list(range(jobs))
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(client(session, ids, latencies) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm peer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchai-bench-") as folder:
        host = start_local_host(Path(folder) / "state")
        try:
            elapsed, latencies = asyncio.run(measure(host.endpoint, host.headers, args.clients, args.jobs))
        finally:
            host.stop()
    latencies.sort()
    rate = len(latencies) / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"job creates: {len(latencies)} with {args.clients} concurrent clients in {elapsed:.2f} s")
    print(f"throughput:  {rate:.0f} creates/s (target >= {TARGET_PER_S})")
    print(f"latency:     p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if args.no_slurm:
        return
    sbatch = slurm_submit_rate(args.clients)
    if isinstance(sbatch, str):
        print(f"vs sbatch:   Slurm not available here ({sbatch}); earlier runs: "
              f"{SLURM_SBATCH_PER_S[0]}-{SLURM_SBATCH_PER_S[1]}/s")
    else:
        print(f"vs sbatch:   Slurm's sbatch {sbatch:.0f} submits/s here, same run: {rate / sbatch:.2f}x")


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
