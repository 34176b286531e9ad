"""`batchai local up --workers 2`: two host instances over one data folder, as Functions scales out.
Every instance serves the API; one killed mid-job is replaced, its node keeps running, and the job
still succeeds exactly once (one run, one event per state). Ctrl-C stops the instances, then the
nodes, then removes the endpoint file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.localhost.instances import instance_pids
from tests.e2e.hosts import agent_pids, alive, running_host
from tests.e2e.polling import wait_until

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/scaled"
CLUSTER = f"{WS}/clusters/one"
Q = {"api-version": "2018-05-01"}


def one_node_cluster(http: httpx.Client) -> None:
    http.put(CLUSTER, json={"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}).raise_for_status()


def one_node_up(http: httpx.Client, data_dir: Path) -> int:
    """The workspace and its one-node cluster; the node's agent's pid once it runs."""
    http.put(WS, json={"location": "local"}).raise_for_status()
    one_node_cluster(http)
    wait_until("the node's agent", lambda: len(agent_pids(data_dir)) == 1, timeout=90)
    [agent] = agent_pids(data_dir)
    return agent


def test_two_instances_one_killed_mid_job_the_job_succeeds_exactly_once(tmp_path: Path) -> None:
    data_dir, runs, gate = tmp_path / "state", tmp_path / "runs", tmp_path / "gate"
    with running_host(data_dir, workers=2, timeout=120) as host:
        first = instance_pids(data_dir)
        assert len(first) == 2, host.output[-20:]
        assert (data_dir / "endpoint").read_text().strip() == host.endpoint
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
            http.put(WS, json={"location": "local"}).raise_for_status()
            http.put(f"{WS}/experiments/e", json={}).raise_for_status()
            one_node_cluster(http)
            command = f"echo $$ >> {runs}; for i in $(seq 1200); do [ -e {gate} ] && exit 0; sleep 0.05; done; exit 9"
            job = f"{WS}/experiments/e/jobs/once"
            http.put(job, json={"properties": {
                "cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                "customToolkitSettings": {"commandLine": command}}}).raise_for_status()
            wait_until("the job to run", lambda: runs.exists() and runs.read_text().strip(), timeout=90)
            [agent] = agent_pids(data_dir)

            os.kill(first[0], signal.SIGKILL)  # one instance dies mid-job, as a worker process can
            wait_until("a replacement instance", lambda: len(set(instance_pids(data_dir)) - set(first)) == 1,
                       timeout=90)
            assert alive(agent), "an instance that dies must not take the pool's nodes with it"
            for _ in range(20):  # every request is answered while an instance is down or starting
                assert http.get(job).status_code == 200
            gate.touch()
            wait_until("the job to succeed", lambda: http.get(job).json()["properties"]["executionState"]
                       == "succeeded", timeout=90)
            time.sleep(2)  # room for a second run, were there one
            assert len(runs.read_text().split()) == 1, "the job ran more than once"
            events = http.get(f"{job}/events").json()["value"]
            states = [e["data"]["state"] for e in events]
            assert states == ["queued", "running", "succeeded"], states
    # Ctrl-C: every instance stopped, then the nodes, and the endpoint file is gone
    assert instance_pids(data_dir) == []
    assert not alive(agent)
    assert not (data_dir / "endpoint").exists()


def test_local_down_stops_the_supervisor_its_instances_and_nodes(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    with running_host(data_dir, workers=2, timeout=120) as host:
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
            agent = one_node_up(http, data_dir)
        down = subprocess.run([sys.executable, "-m", "shared.cli", "local", "down", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert "is down (1 host stopped)" in down.stdout
        assert host.process.wait(30) == 0
        assert instance_pids(data_dir) == []
        wait_until("the node to stop", lambda: not alive(agent), timeout=30)


def test_two_instances_run_the_timers_a_dead_nodes_agent_is_replaced(tmp_path: Path) -> None:
    """The reconcile timer (its schedule an app setting) runs in one of the instances: a node whose
    agent dies is seen and replaced, and no timer fails."""
    data_dir = tmp_path / "state"
    with running_host(data_dir, workers=2, timeout=120) as host:
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
            agent = one_node_up(http, data_dir)
            os.killpg(agent, signal.SIGKILL)
            wait_until("a new node in its place", lambda: [p for p in agent_pids(data_dir) if p != agent], timeout=60)
            wait_until("the new node to be idle", lambda: http.get(CLUSTER).json()["properties"]["nodeStateCounts"]
                       ["idleNodeCount"] == 1, timeout=60)
        failed = [line for line in host.output if "timer function" in line and "failed" in line]
        assert not failed, failed


def test_a_second_host_on_the_same_folder_is_refused_and_harms_nothing(tmp_path: Path) -> None:
    """Started beside a running host (alone or supervised), another host on the same folder would take
    the deployment's start and stop for its own; it is refused, and the first host's node, endpoint
    file and leases are untouched."""
    data_dir = tmp_path / "state"
    with running_host(data_dir, timeout=60) as host:
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
            agent = one_node_up(http, data_dir)
            for workers in ("1", "2"):
                second = subprocess.run([sys.executable, "-m", "shared.localhost", "up", "--data-dir", str(data_dir),
                                         "--port", "0", "--workers", workers],
                                        capture_output=True, text=True, timeout=60)
                assert second.returncode == 1, second.stdout + second.stderr
                assert f"Another Batch AI local host (pid {host.pid}) serves" in second.stdout
            assert alive(agent), "a refused host must not stop the running host's nodes"
            assert (data_dir / "endpoint").read_text().strip() == host.endpoint
            assert http.get(CLUSTER).json()["properties"]["nodeStateCounts"]["idleNodeCount"] == 1
    with running_host(data_dir, timeout=60):  # once the first is gone, the folder is free again
        pass
