"""Invariant 9, no silent hang: whatever fails on a node while it prepares or launches an attempt
ends in a report, so the job fails within seconds with an error that names the cause, instead of
staying `running` until its wall clock; and should a node hold an attempt without any live work
for it all the same, the control plane notices and fails the job. The real local host, a real
agent, real folders."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import alive, running_host
from tests.e2e.polling import wait_until
from tests.security.one_node_cluster import one_node_cluster

WS = "/subscriptions/sec/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/hang"
CLUSTER = f"{WS}/clusters/one"
SETUP_WS = "/subscriptions/sec/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/hang-setup"
Q = {"api-version": "2018-05-01"}
REPORTED_WITHIN_SECONDS = 10.0  # a report is immediate; this bounds the whole round trip
NOTICED_WITHIN_SECONDS = 15.0  # the grace (3 heartbeats: 6 s), a watchdog round (2 s), and room for a busy machine


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("hang") / "state") as host:
        yield host


@pytest.fixture(scope="module")
def http(host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as client:
        one_node_cluster(client, WS)
        idle(client, CLUSTER)
        yield client


def idle(http: httpx.Client, cluster: str) -> None:
    wait_until("an idle node", lambda: http.get(cluster).json()["properties"]["nodeStateCounts"]["idleNodeCount"] == 1,
               timeout=60)


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    """A regular file, standing for /etc/hostname: nothing can be made below it."""
    path = tmp_path / "hostname"
    path.write_text("node\n")
    return path


def submit(http: httpx.Client, name: str, **properties: Any) -> httpx.Response:
    body = {"cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "customToolkitSettings": {"commandLine": "echo hello"}} | properties
    return http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": body})


def ended(http: httpx.Client, name: str) -> dict[str, Any]:
    """The job's properties once it has ended; fails if it is still running after the bound."""
    started = time.monotonic()
    props = wait_until(f"{name} to end", lambda: (p := http.get(f"{WS}/experiments/e/jobs/{name}").json()
                                                  ["properties"])["executionState"] in ("succeeded", "failed") and p,
                       timeout=REPORTED_WITHIN_SECONDS + 20)
    took = time.monotonic() - started
    assert took < REPORTED_WITHIN_SECONDS, f"{name} ended only {took:.1f} s after it was submitted"
    return props  # type: ignore[no-any-return]


def only_error(props: dict[str, Any]) -> dict[str, str]:
    assert props["executionState"] == "failed", props
    [error] = props["executionInfo"]["errors"]
    return error  # type: ignore[no-any-return]


def test_a_stdouterr_prefix_below_a_regular_file_fails_the_job_naming_the_cause(http: httpx.Client,
                                                                                 regular_file: Path) -> None:
    submit(http, "below-file", stdOutErrPathPrefix=str(regular_file / "x")).raise_for_status()
    error = only_error(ended(http, "below-file"))
    assert error["code"] == "InvalidStdOutErrPath", error
    assert "stdOutErrPathPrefix" in error["message"] and str(regular_file) in error["message"], error
    assert "Not a directory" in error["message"], error  # the OS's own words


def test_a_stdouterr_prefix_with_a_nul_is_refused_or_fails_the_job(http: httpx.Client) -> None:
    answer = submit(http, "nul-prefix", stdOutErrPathPrefix="/tmp/a\u0000b")
    if answer.status_code == 400:  # refused at the door: the field is named
        assert "stdOutErrPathPrefix" in answer.json()["error"]["target"], answer.text
        return
    answer.raise_for_status()
    error = only_error(ended(http, "nul-prefix"))
    assert error["code"] == "InvalidStdOutErrPath" and "null" in error["message"], error


def test_an_output_directory_below_a_regular_file_fails_the_job_naming_it(http: httpx.Client,
                                                                           regular_file: Path) -> None:
    submit(http, "output-below-file", outputDirectories=[{"id": "MODEL", "pathPrefix": str(regular_file)}]
           ).raise_for_status()
    error = only_error(ended(http, "output-below-file"))
    assert error["code"] == "InvalidOutputDirectory", error
    assert "outputDirectories[0]" in error["message"] and "MODEL" in error["message"], error
    assert "Not a directory" in error["message"], error


def test_a_job_that_removes_its_own_stdouterr_folder_still_ends(http: httpx.Client) -> None:
    """The agent writes the execution log there after the process exits: a missing folder is no reason to hang."""
    submit(http, "self-cleaning", customToolkitSettings={"commandLine": "rm -rf \"$AZ_BATCHAI_STDOUTERR_DIR\""}
           ).raise_for_status()
    assert ended(http, "self-cleaning")["executionState"] == "succeeded"


def test_a_launch_that_cannot_start_fails_the_job(http: httpx.Client) -> None:
    """The job preparation turns the job's temp folder (which holds the stdouterr folder) into a
    regular file: the job's process cannot be started, and the agent's own log cannot be written."""
    submit(http, "no-cwd", jobPreparation={"commandLine": "rm -rf \"$AZ_BATCHAI_JOB_TEMP\"; touch \"$AZ_BATCHAI_JOB_TEMP\""},
           customToolkitSettings={"commandLine": "echo never"}).raise_for_status()
    error = only_error(ended(http, "no-cwd"))
    assert error["code"] == "JobLaunchFailed" and "Not a directory" in error["message"], error


def test_a_node_that_holds_a_running_attempt_but_runs_nothing_for_it_fails_the_job(
        http: httpx.Client, host: LocalHostProcess, tmp_path: Path) -> None:
    """The safety net, on a real node: its agent is frozen (SIGSTOP) and, in its place, heartbeats
    with its own credential say what a broken agent would: alive, but running nothing. The job
    fails with AttemptVanished within seconds; once the agent is back it stops the job's process."""
    pid_file = tmp_path / "pid"
    submit(http, "held", customToolkitSettings={"commandLine": f"echo $$ > {pid_file}; sleep 120"}).raise_for_status()
    wait_until("the job's process to start", lambda: pid_file.exists() and pid_file.read_text().strip())
    node_dir = next(d.parent for d in (host.data_dir / "pools").glob("*/*/bootstrap.json")
                    if json.loads(d.read_text())["cluster_id"].lower() == CLUSTER.lower())
    headers = {"x-batchai-node": f"{node_dir.parent.name.removeprefix('c')}|{node_dir.name}",
               "x-batchai-node-credential": (node_dir / "credential").read_text().strip()}
    agent = int((node_dir / "agent.pid").read_text())
    os.kill(agent, signal.SIGSTOP)
    try:
        since = time.monotonic()
        while (state := job_state(http, "held")) == "running" and time.monotonic() - since < 30:
            beat = {"running": None, "idleSeconds": round(time.monotonic() - since, 3)}
            assert httpx.post(f"{host.endpoint}/agent/heartbeat", json=beat, headers=headers).status_code == 200
            time.sleep(1.0)
        took = time.monotonic() - since
    finally:
        os.kill(agent, signal.SIGCONT)
    error = only_error(http.get(f"{WS}/experiments/e/jobs/held").json()["properties"])
    assert error["code"] == "AttemptVanished" and node_dir.name in error["message"], (state, error)
    print(f"AttemptVanished {took:.1f} s after the node stopped running the attempt")
    assert took < NOTICED_WITHIN_SECONDS, f"the job failed {took:.1f} s after its node stopped running it"
    job_process = int(pid_file.read_text())
    wait_until("the agent to stop the job's process", lambda: not alive(job_process), timeout=20)
    idle(http, CLUSTER)  # the node was healthy: it takes work again


def job_state(http: httpx.Client, name: str) -> str:
    return str(http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]["executionState"])


def test_a_setup_task_whose_stdouterr_folder_cannot_be_made_makes_the_node_unusable_saying_why(
        http: httpx.Client, regular_file: Path) -> None:
    """The same for a node's setup: the agent says the node is unusable, it does not die and restart."""
    cluster = one_node_cluster(http, SETUP_WS, nodeSetup={
        "setupTask": {"commandLine": "true", "stdOutErrPathPrefix": str(regular_file)}})
    props = wait_until("the node to be unusable", lambda: (p := http.get(cluster).json()["properties"])
                       ["nodeStateCounts"]["unusableNodeCount"] == 1 and p, timeout=30)
    [error] = props["errors"]
    assert error["code"] == "InvalidStdOutErrPath" and "setupTask.stdOutErrPathPrefix" in error["message"], error
    assert "Not a directory" in error["message"], error
    http.delete(cluster)
