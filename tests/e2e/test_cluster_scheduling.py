"""Scheduling end to end: the real local host, real agent processes on 127.0.0.x, real job processes.

Jobs prove what happened by writing files: the order they started in, the hostfile they were given,
one marker file per start. Jobs that must stay busy wait for a gate file the test creates, so no case
depends on how fast this machine is; every wait is bounded.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess, start_local_host
from tests.e2e.hosts import agent_pids, alive, kill_agents, running_host
from tests.e2e.polling import wait_until
from tests.integration.test_event_delivery import Receiver

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"
Q = {"api-version": "2018-05-01"}
FINAL = ("succeeded", "failed")
HOST_ENV = {"BATCHAI_AUTOSCALE_IDLE_SECONDS": "1", "BATCHAI_HEARTBEAT_SECONDS": "0.5"}


class BatchAI:
    """The few REST calls these cases make, on one workspace and experiment."""

    def __init__(self, host: LocalHostProcess) -> None:
        self.host = host
        self.http = httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers,
                                 event_hooks={"response": [self._server_error]})
        self.data_dir = host.data_dir
        self.http.put(WS, json={"location": "local"}).raise_for_status()
        self.http.put(f"{WS}/experiments/e", json={}).raise_for_status()

    def close(self) -> None:
        self.http.close()

    def _server_error(self, answer: httpx.Response) -> None:
        """A 5xx is a bug of the host: show what it logged, not only the status."""
        if answer.status_code >= 500:
            answer.read()
            pytest.fail(f"{answer.request.method} {answer.request.url} -> {answer.status_code} {answer.text[:500]}\n"
                        "host output:\n" + "\n".join(self.host.output[-60:]))

    def cluster(self, name: str, scale: dict[str, Any]) -> None:
        body = {"properties": {"vmSize": "STANDARD_D1_V2", "scaleSettings": scale,
                               "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}
        self.http.put(f"{WS}/clusters/{name}", json=body).raise_for_status()

    def cluster_props(self, name: str) -> dict[str, Any]:
        answer = self.http.get(f"{WS}/clusters/{name}")
        answer.raise_for_status()
        return answer.json()["properties"]

    def wait_idle_nodes(self, name: str, count: int, timeout: float = 30) -> None:
        wait_until(f"{count} idle nodes in {name}",
                   lambda: self.cluster_props(name)["nodeStateCounts"]["idleNodeCount"] == count, timeout)

    def resize(self, name: str, target: int, option: str) -> None:
        scale = {"manual": {"targetNodeCount": target, "nodeDeallocationOption": option}}
        self.http.patch(f"{WS}/clusters/{name}", json={"properties": {"scaleSettings": scale}}).raise_for_status()

    def job(self, name: str, cluster: str, command: str, *, priority: str = "normal", nodes: int = 1) -> None:
        body = {"properties": {"cluster": {"id": f"{WS}/clusters/{cluster}"}, "nodeCount": nodes,
                               "schedulingPriority": priority, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                               "customToolkitSettings": {"commandLine": command}}}
        self.http.put(f"{WS}/experiments/e/jobs/{name}", json=body).raise_for_status()

    def job_props(self, name: str) -> dict[str, Any]:
        answer = self.http.get(f"{WS}/experiments/e/jobs/{name}")
        answer.raise_for_status()
        return answer.json()["properties"]

    def state(self, name: str) -> str:
        return str(self.job_props(name)["executionState"])

    def wait_state(self, name: str, *states: str, timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            props = self.job_props(name)
            return props if props["executionState"] in states else None
        return wait_until(f"job {name} to be {'/'.join(states)}", reached, timeout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    data_dir = tmp_path_factory.mktemp("scheduling") / "state"
    with running_host(data_dir, HOST_ENV) as host:
        yield host
    assert agent_pids(data_dir) == [], "a clean stop of the host stops its agents"


@pytest.fixture
def api(host: LocalHostProcess) -> Iterator[BatchAI]:
    client = BatchAI(host)
    yield client
    client.close()


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A file that holds jobs running until the test creates it."""
    return tmp_path / "gate"


def held(gate: Path, then: str = "true") -> str:
    """A command line that waits for `gate` (bounded, so nothing outlives a failed case), then runs `then`."""
    return f"for i in $(seq 600); do [ -e {gate} ] && break; sleep 0.05; done; {then}"


def test_jobs_start_in_priority_order_then_fifo(api: BatchAI, gate: Path, tmp_path: Path) -> None:
    order = tmp_path / "order"
    api.cluster("prio", {"manual": {"targetNodeCount": 1}})
    api.wait_idle_nodes("prio", 1)
    api.job("blocker", "prio", held(gate))
    api.wait_state("blocker", "running")
    submitted = [("low", "l1"), ("normal", "n1"), ("high", "h1"), ("low", "l2"), ("high", "h2"), ("normal", "n2")]
    for priority, name in submitted:
        api.job(name, "prio", f"echo {name} >> {order}", priority=priority)
    assert {api.state(name) for _, name in submitted} == {"queued"}
    gate.touch()
    for _, name in submitted:
        assert api.wait_state(name, *FINAL)["executionState"] == "succeeded"
    assert order.read_text().split() == ["h1", "h2", "n1", "n2", "l1", "l2"]


def test_a_gang_job_gets_all_its_nodes_at_once(api: BatchAI, gate: Path, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    api.cluster("gang", {"manual": {"targetNodeCount": 2}})
    api.wait_idle_nodes("gang", 2)
    api.job("one-node", "gang", held(gate))
    api.wait_state("one-node", "running")
    second_gate = tmp_path / "second-gate"
    api.job("two-nodes", "gang", held(second_gate, f"cp $AZ_BATCHAI_MPI_HOST_FILE {hosts}"), nodes=2)
    deadline = time.monotonic() + 1.0  # one node is idle the whole time: the gang must not take it alone
    while time.monotonic() < deadline:
        assert api.state("two-nodes") == "queued"
        counts = api.cluster_props("gang")["nodeStateCounts"]
        assert (counts["runningNodeCount"], counts["idleNodeCount"]) == (1, 1)
        time.sleep(0.1)
    gate.touch()
    api.wait_state("two-nodes", "running")
    counts = api.cluster_props("gang")["nodeStateCounts"]
    assert (counts["runningNodeCount"], counts["idleNodeCount"]) == (2, 0)
    second_gate.touch()
    props = api.wait_state("two-nodes", *FINAL)
    assert props["executionState"] == "succeeded" and props["executionInfo"]["exitCode"] == 0
    addresses = [line.split()[0] for line in hosts.read_text().splitlines() if line.strip()]
    assert len(addresses) == 2 and len(set(addresses)) == 2, addresses
    assert all(address.startswith("127.0.0.") and address != "127.0.0.1" for address in addresses)
    api.wait_idle_nodes("gang", 2)


def test_autoscale_grows_from_zero_for_fifty_jobs_and_returns_to_zero(api: BatchAI, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    api.cluster("auto", {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4, "initialNodeCount": 0}})
    assert api.cluster_props("auto")["currentNodeCount"] == 0
    names = [f"auto-{n:02d}" for n in range(50)]
    for name in names:
        api.job(name, "auto", f"sleep 0.2; touch {markers}/{name}")
    seen: set[int] = set()

    def all_final() -> bool:
        seen.add(api.cluster_props("auto")["currentNodeCount"])
        return all(api.state(name) in FINAL for name in names)

    wait_until("50 jobs to end", all_final, timeout=120, every=0.2)
    assert {api.state(name) for name in names} == {"succeeded"}
    assert sorted(p.name for p in markers.iterdir()) == names
    assert max(seen) == 4, f"node counts seen: {sorted(seen)}"
    wait_until("the pool to return to 0 nodes", lambda: api.cluster_props("auto")["currentNodeCount"] == 0, 30)
    props = api.cluster_props("auto")
    assert props["allocationState"] == "steady"
    wait_until("the agents to be gone", lambda: not agent_pids(api.data_dir, "auto"), 10)


@pytest.mark.parametrize("option", ["requeue", "terminate", "waitforjobcompletion"])
def test_shrinking_removes_idle_nodes_first_then_honours_the_deallocation_option(
        api: BatchAI, gate: Path, tmp_path: Path, option: str) -> None:
    cluster = f"shrink-{option}"
    starts = tmp_path / "starts"
    starts.mkdir()
    api.cluster(cluster, {"manual": {"targetNodeCount": 3}})
    api.wait_idle_nodes(cluster, 3)
    for name in ("a", "b"):
        api.job(f"{option}-{name}", cluster, f"touch {starts}/{name}.$$; " + held(gate))
        api.wait_state(f"{option}-{name}", "running")

    api.resize(cluster, 2, option)  # the idle node goes; both jobs keep running whatever the option
    wait_until("the idle node to go", lambda: api.cluster_props(cluster)["currentNodeCount"] == 2)
    assert {api.state(f"{option}-{n}") for n in "ab"} == {"running"}

    api.resize(cluster, 1, option)  # now a busy node must go
    jobs = [f"{option}-a", f"{option}-b"]
    if option == "requeue":
        wait_until("one job back in the queue", lambda: sorted(api.state(j) for j in jobs) == ["queued", "running"])
        wait_until("the node to go", lambda: api.cluster_props(cluster)["currentNodeCount"] == 1)
        gate.touch()
        for job in jobs:
            assert api.wait_state(job, *FINAL)["executionState"] == "succeeded"
        assert len(list(starts.iterdir())) == 3, "the requeued job started again"
    elif option == "terminate":
        wait_until("one job to fail", lambda: sorted(api.state(j) for j in jobs) == ["failed", "running"])
        wait_until("the node to go", lambda: api.cluster_props(cluster)["currentNodeCount"] == 1)
        failed = next(j for j in jobs if api.state(j) == "failed")
        assert api.job_props(failed)["executionInfo"]["errors"], "a terminated job says why"
        gate.touch()
        survivor = next(j for j in jobs if j != failed)
        assert api.wait_state(survivor, *FINAL)["executionState"] == "succeeded"
        assert len(list(starts.iterdir())) == 2
    else:
        time.sleep(1.0)  # the nodes stay while their jobs run
        props = api.cluster_props(cluster)
        assert props["currentNodeCount"] == 2 and props["allocationState"] == "resizing"
        assert {api.state(j) for j in jobs} == {"running"}
        gate.touch()
        for job in jobs:
            assert api.wait_state(job, *FINAL)["executionState"] == "succeeded"
        wait_until("the node to go", lambda: api.cluster_props(cluster)["currentNodeCount"] == 1)
        assert len(list(starts.iterdir())) == 2
    wait_until("a steady cluster", lambda: api.cluster_props(cluster)["allocationState"] == "steady")


def test_a_job_its_cluster_can_never_hold_fails_at_once(api: BatchAI) -> None:
    api.cluster("small", {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2}})
    api.job("too-big", "small", "true", nodes=3)
    props = api.job_props("too-big")
    assert props["executionState"] == "failed"
    message = " ".join(e["message"] for e in props["executionInfo"]["errors"])
    assert "3" in message and "2" in message, message


def test_deleting_a_cluster_stops_its_jobs_and_agents(api: BatchAI, gate: Path, tmp_path: Path) -> None:
    job_pid = tmp_path / "job.pid"
    api.cluster("doomed", {"manual": {"targetNodeCount": 2}})
    api.wait_idle_nodes("doomed", 2)
    api.job("victim", "doomed", f"echo $$ > {job_pid}; " + held(gate))
    api.wait_state("victim", "running")
    wait_until("the job's pid", job_pid.exists)
    pid = int(job_pid.read_text())
    agents = agent_pids(api.data_dir, "doomed")
    assert len(agents) == 2
    answer = api.http.delete(f"{WS}/clusters/doomed")
    assert answer.status_code in (200, 202, 204)
    wait_until("the cluster to go", lambda: api.http.get(f"{WS}/clusters/doomed").status_code == 404)
    props = api.wait_state("victim", *FINAL)
    assert props["executionState"] == "failed"
    wait_until("the agents and the job's processes to end", lambda: not any(alive(p) for p in [*agents, pid]), 15,
               describe=lambda: [p for p in [*agents, pid] if alive(p)])


def test_killing_the_host_at_random_moments_loses_no_job_and_starts_none_twice(tmp_path: Path) -> None:
    """Kills land during dispatch, completion and event delivery alike; a webhook subscriber gets
    every job's queued, running and succeeded events at least once."""
    data_dir = tmp_path / "state"
    markers = tmp_path / "markers"
    markers.mkdir()
    rng = random.Random(int(os.environ.get("BATCHAI_CRASH_SEED", "3")))
    names = [f"crash-{n:02d}" for n in range(24)]
    host = start_local_host(data_dir, env=HOST_ENV)
    receiver = Receiver()
    try:
        api = BatchAI(host)
        api.http.put(f"{WS}/eventSubscriptions/crash", json={"properties": {
            "destination": {"endpointUrl": receiver.url}}}).raise_for_status()
        api.cluster("crashy", {"manual": {"targetNodeCount": 2}})
        api.wait_idle_nodes("crashy", 2)
        for name in names:
            api.job(name, "crashy", f"touch {markers}/{name}.$$; sleep 0.{rng.randint(1, 4)}")
        api.close()
        for _ in range(4):
            time.sleep(rng.uniform(0.2, 1.2))
            host.kill()
            host = start_local_host(data_dir, env=HOST_ENV)
        api = BatchAI(host)
        wait_until("every job to end", lambda: all(api.state(name) in FINAL for name in names), 90, 0.2)
        states = {name: api.state(name) for name in names}
        api.close()
        assert set(states.values()) == {"succeeded"}, states
        started = sorted(p.name.split(".")[0] for p in markers.iterdir())
        assert started == names, "each job started exactly once"
        wanted = {(f"{WS}/experiments/e/jobs/{n}", f"Microsoft.BatchAI.Job{t}") for n in names
                  for t in ("Queued", "Running", "Succeeded")}
        wait_until("every job's events at the webhook",
                   lambda: wanted <= {(e["source"], e["type"]) for e in receiver.events()}, 60, 0.2)
        assert host.stop() == 0, "\n".join(host.output[-40:])
    finally:
        receiver.stop()
        host.kill()
        kill_agents(data_dir)


@pytest.mark.servicebus
def test_jobs_run_in_priority_order_with_service_bus_messaging(servicebus_broker: str, tmp_path: Path) -> None:
    """The same host with the Service Bus adapter (on the test broker) in place of the SQLite queues."""
    gate, order = tmp_path / "gate", tmp_path / "order"
    env = {**HOST_ENV, "BATCHAI_MESSAGING": "servicebus", "BATCHAI_SERVICEBUS_CONNECTION": servicebus_broker}
    with running_host(tmp_path / "state", env, timeout=60) as host:
        api = BatchAI(host)
        api.cluster("bus", {"manual": {"targetNodeCount": 1}})
        api.wait_idle_nodes("bus", 1)
        api.job("bus-blocker", "bus", held(gate))
        api.wait_state("bus-blocker", "running")
        for priority, name in [("low", "l1"), ("high", "h1"), ("normal", "n1"), ("high", "h2")]:
            api.job(name, "bus", f"echo {name} >> {order}", priority=priority)
        gate.touch()
        for name in ("bus-blocker", "l1", "h1", "n1", "h2"):
            assert api.wait_state(name, *FINAL)["executionState"] == "succeeded"
        assert order.read_text().split() == ["h1", "h2", "n1", "l1"]
        api.close()
