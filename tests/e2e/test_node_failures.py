"""Nodes fail, jobs don't: a running 2-node job survives an agent killed with SIGKILL (the pool sees
its process gone) and an agent that hangs (SIGSTOP: alive, but its heartbeats stop, so only the
watchdog can tell). With default settings the job is back in the queue within 10 s, the first
attempt's processes are gone, and the job then succeeds on fresh nodes. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.polling import wait_until
from tests.e2e.hosts import alive, running_host

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/fail"
CLUSTER = f"{WS}/clusters/pair"
Q = {"api-version": "2018-05-01"}
REQUEUE_TARGET_SECONDS = 10.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("failures") / "state") as host:  # default heartbeats: 2 s, 3 missed
        yield host


@pytest.fixture(scope="module")
def http(host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as client:
        client.put(WS, json={"location": "local"}).raise_for_status()
        client.put(f"{WS}/experiments/e", json={}).raise_for_status()
        client.put(CLUSTER, json={"properties": {
            "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 2}},
            "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}).raise_for_status()
        yield client


def idle_nodes(http: httpx.Client) -> int:
    return int(http.get(CLUSTER).json()["properties"]["nodeStateCounts"]["idleNodeCount"])


def job(http: httpx.Client, name: str) -> dict[str, Any]:
    return http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]


def start_pair_job(http: httpx.Client, name: str, folder: Path) -> tuple[Path, Path]:
    """A 2-node job whose master records its shell's pid per attempt, then waits for a gate."""
    gate, pids = folder / "gate", folder / "pids"
    command = f"echo $$ >> {pids}; for i in $(seq 1200); do [ -e {gate} ] && exit 0; sleep 0.05; done; exit 9"
    wait_until("2 idle nodes", lambda: idle_nodes(http) == 2, timeout=60)
    http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": {
        "cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
        "customToolkitSettings": {"commandLine": command}}}).raise_for_status()
    wait_until(f"{name}'s first attempt to start", lambda: pids.exists() and pids.read_text().strip(), timeout=30)
    return gate, pids


def agent_pid(host: LocalHostProcess, node_id: str) -> int:
    [pid_file] = (host.data_dir / "pools").glob(f"*/{node_id}/agent.pid")
    return int(pid_file.read_text())


def job_nodes(http: httpx.Client, name: str) -> list[str]:
    answer = http.post(f"{WS}/experiments/e/jobs/{name}/listRemoteLoginInformation").json()
    return [n["nodeId"] for n in answer["value"]]


def requeued_after(http: httpx.Client, name: str, first_start: str, since: float) -> float:
    """Seconds from `since` until the job's first attempt ended (queued again, or a later attempt)."""
    wait_until(f"{name} to be requeued", lambda: (p := job(http, name))["executionState"] == "queued"
               or p.get("executionInfo", {}).get("startTime") != first_start, timeout=30, every=0.05)
    return time.monotonic() - since


@pytest.mark.parametrize("how", ["SIGKILL of the master's agent", "SIGSTOP of the other node's agent"])
def test_a_job_survives_the_loss_of_a_node(http: httpx.Client, host: LocalHostProcess, tmp_path: Path,
                                           how: str) -> None:
    name = "killed" if how.startswith("SIGKILL") else "hung"
    gate, pids = start_pair_job(http, name, tmp_path)
    first_start = job(http, name)["executionInfo"]["startTime"]
    master, other = job_nodes(http, name)
    lost = master if name == "killed" else other
    first_shell = int(pids.read_text().split()[0])
    victim = agent_pid(host, lost)
    os.kill(victim, signal.SIGKILL if name == "killed" else signal.SIGSTOP)
    took = requeued_after(http, name, first_start, time.monotonic())
    print(f"{how}: requeued {took:.1f} s after")
    assert took < REQUEUE_TARGET_SECONDS, f"requeued {took:.1f} s after the {how}"
    wait_until("the first attempt's process to be gone", lambda: not alive(first_shell), timeout=15)
    wait_until("the second attempt to start", lambda: len(pids.read_text().split()) >= 2, timeout=60)
    assert lost not in job_nodes(http, name)  # the second attempt runs on fresh nodes
    gate.touch()
    props = wait_until(f"{name} to end", lambda: (p := job(http, name))["executionState"] in ("succeeded", "failed")
                       and p, timeout=60)
    assert props["executionState"] == "succeeded", props
    assert not alive(victim)  # the lost node left the pool: its agent was stopped for good
