"""Chaos: jobs keep their promises while node agents die.

    python bench/chaos.py [--nodes 4] [--jobs 40] [--kill-for 40] [--kill-every 3]
                          [--instances N --kill-instance-every 5]

Starts a local host with default settings and a K-node cluster, submits N jobs (each records its
start and end and works for 1-3 s), and for a bounded time kills a random busy node's agent with
SIGKILL at random moments (SIGSTOP, a hung agent, every third time). Then it waits for every job to
end and prints: jobs submitted / succeeded / failed / lost (never ended: must be 0) / run twice at
once (two live processes of one job: must be 0), and the mean and worst time from a kill to the
requeue of the job that node ran. Target: mean under 10 s (Slurm's default node timeout is 300 s).

With --instances N the host runs N instances over its data folder (`batchai local up --workers N`), and
with --kill-instance-every S one instance at random is killed with SIGKILL about every S seconds
during the same time (its supervisor starts another): still 0 lost, 0 run twice at once.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from shared.localhost.instances import instance_pids
from shared.localhost.instances import running as alive
from shared.localhost.process import start_local_host

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/chaos"
Q = {"api-version": "2018-05-01"}
FINAL = ("succeeded", "failed")


class Overlaps:
    """Watches the jobs' marker files: a job with two live processes at once ran twice at once."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.found = folder, set[str]()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            for marker in self.folder.glob("*.starts"):
                pids = [int(line.split()[1]) for line in marker.read_text().splitlines() if line.strip()]
                if sum(alive(p) for p in pids) > 1:
                    self.found.add(marker.stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--kill-for", type=float, default=40.0, help="seconds of killing")
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    parser.add_argument("--instances", type=int, default=1, help="host instances (local up --workers)")
    parser.add_argument("--kill-instance-every", type=float, default=0.0,
                        help="mean seconds between kills of a random host instance (0: none)")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="batchai-chaos-") as folder:
        markers = Path(folder) / "markers"
        markers.mkdir()
        host = start_local_host(Path(folder) / "state", workers=args.instances, timeout=60 + 30 * args.instances)
        overlaps = Overlaps(markers)
        instance_kills: list[int] = []
        killer = threading.Thread(target=kill_instances, args=(host.data_dir, args, random.Random(11), instance_kills),
                                  daemon=True)
        requeues: list[float] = []
        states: dict[str, str] = {}
        names: list[str] = []
        try:
            with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers,
                              transport=Retrying()) as http:
                http.put(WS, json={"location": "local"}).raise_for_status()
                http.put(f"{WS}/experiments/e", json={}).raise_for_status()
                http.put(f"{WS}/clusters/c", json={"properties": {
                    "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": args.nodes}},
                    "userAccountSettings": {"adminUserName": "b", "adminUserPassword": "b"}}}).raise_for_status()
                names = [f"job-{i:03d}" for i in range(args.jobs)]
                for name in names:
                    work = rng.uniform(1, 3)
                    command = (f"echo \"$(date +%s.%N) $$\" >> {markers}/{name}.starts; sleep {work:.2f}; "
                               f"echo done >> {markers}/{name}.ends")
                    http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": {
                        "cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                        "customToolkitSettings": {"commandLine": command}}}).raise_for_status()
                if args.kill_instance_every > 0:
                    killer.start()
                requeues = chaos(http, host.endpoint, host.data_dir, args, rng)
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    states = {n: http.get(f"{WS}/experiments/e/jobs/{n}").json()["properties"]["executionState"]
                              for n in names}
                    if all(s in FINAL for s in states.values()):
                        break
                    time.sleep(0.5)
                for name in (n for n, state in states.items() if state == "failed"):  # why, for the reader
                    info = http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"].get("executionInfo") or {}
                    codes = [e.get("code") for e in info.get("errors") or []]
                    print(f"{name} failed: {', '.join(c for c in codes if c)}")
        finally:
            overlaps.stop.set()
            host.stop()
    done = [s for s in states.values() if s in FINAL]
    print(f"nodes {args.nodes}, jobs {args.jobs}, agents killed {len(requeues)} over {args.kill_for:.0f} s")
    if args.instances > 1:
        print(f"host instances {args.instances}, instances killed {len(instance_kills)}")
    print(f"submitted {len(names)}  succeeded {sum(s == 'succeeded' for s in done)}  "
          f"failed {sum(s == 'failed' for s in done)}  lost {len(names) - len(done)}  "
          f"run twice at once {len(overlaps.found)}")
    measured = [r for r in requeues if r >= 0]
    if measured:
        print(f"kill -> requeue: mean {statistics.mean(measured):.1f} s, worst {max(measured):.1f} s "
              f"over {len(measured)} kills of a busy node (target: mean under 10 s)")
    if len(names) != len(done) or overlaps.found:
        sys.exit(1)


class Retrying(httpx.HTTPTransport):
    """A request cut by an instance's death is sent again (every request here is idempotent)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(10):
            try:
                return super().handle_request(request)
            except httpx.TransportError:
                if attempt == 9:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")


def kill_instances(data_dir: Path, args: argparse.Namespace, rng: random.Random, killed: list[int]) -> None:
    """SIGKILL a random host instance now and then while the chaos lasts."""
    end = time.monotonic() + args.kill_for
    while time.monotonic() < end:
        time.sleep(rng.expovariate(1 / args.kill_instance_every))
        pids = instance_pids(data_dir)
        if len(pids) < args.instances:
            continue  # one is still being replaced
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass


def chaos(http: httpx.Client, endpoint: str, data_dir: Path, args: argparse.Namespace, rng: random.Random
          ) -> list[float]:
    """Kill the agent of a random busy node now and then; for each kill, the seconds until the job
    that node ran was requeued (measured by a thread of its own while the chaos goes on)."""
    requeues: list[float] = []
    watchers = []
    end = time.monotonic() + args.kill_for
    count = 0
    while time.monotonic() < end:
        time.sleep(rng.expovariate(1 / args.kill_every))
        busy = running_jobs(http)
        if not busy:
            continue
        name, props = rng.choice(busy)
        logins = http.post(f"{WS}/experiments/e/jobs/{name}/listRemoteLoginInformation").json()["value"]
        if not logins:
            continue
        pid_file = next((data_dir / "pools").glob(f"*/{logins[0]['nodeId']}/agent.pid"), None)
        if pid_file is None:
            continue
        count += 1
        try:
            os.kill(int(pid_file.read_text()), signal.SIGSTOP if count % 3 == 0 else signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            continue
        start, killed_at = props["executionInfo"]["startTime"], time.monotonic()
        headers = dict(http.headers)
        watcher = threading.Thread(
            target=lambda n=name, s=start, k=killed_at: requeues.append(requeued(endpoint, headers, n, s, k)))
        watcher.start()
        watchers.append(watcher)
    for watcher in watchers:
        watcher.join()
    return requeues


def running_jobs(http: httpx.Client) -> list[tuple[str, dict[str, Any]]]:
    answer = http.get(f"{WS}/experiments/e/jobs", params={"maxresults": 1000}).json()["value"]
    return [(j["name"], j["properties"]) for j in answer if j["properties"]["executionState"] == "running"]


def requeued(endpoint: str, headers: dict[str, str], name: str, start: str, killed_at: float) -> float:
    """Seconds from the kill until the attempt ended (-1 if the job ended on its own first)."""
    with httpx.Client(base_url=endpoint, params=Q, timeout=30, headers=headers, transport=Retrying()) as http:
        while time.monotonic() - killed_at < 60:
            props = http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]
            if props["executionState"] in FINAL and props.get("executionInfo", {}).get("startTime") == start:
                return -1.0
            if props["executionState"] == "queued" or props.get("executionInfo", {}).get("startTime") != start:
                return time.monotonic() - killed_at
            time.sleep(0.05)
    return 60.0


if __name__ == "__main__":
    main()
