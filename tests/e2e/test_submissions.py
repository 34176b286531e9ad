"""Requests by queue message end to end: the local host, its Service Bus door, the azure-servicebus
SDK as a pipeline would use it, real agents and real job processes; and the same host on Service
Bus messaging (the test broker) in place of its embedded queues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSubQueue

from shared.client.requests_by_message import JOB_SUBMISSIONS, REPLIES, RequestQueue
from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.e2e.test_cluster_scheduling import FINAL, HOST_ENV, WS, BatchAI
from tests.integration.test_submissions import bad_job_messages

PATH = {"subscriptionId": "e2e", "resourceGroupName": "rg", "workspaceName": "ws", "experimentName": "e"}
LIMIT = 64 * 1024  # the host's request size limit here, so a too-large message stays under the SDK's own
REPO = Path(__file__).resolve().parents[2]


def job_body(command: str) -> dict[str, Any]:
    return {"properties": {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1,
                           "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                           "customToolkitSettings": {"commandLine": command}}}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    env = HOST_ENV | {"BATCHAI_MAX_REQUEST_BYTES": str(LIMIT)}
    with running_host(tmp_path_factory.mktemp("submissions") / "state", env) as host:
        api = BatchAI(host)
        api.cluster("c", {"manual": {"targetNodeCount": 1}})
        api.wait_idle_nodes("c", 1)
        api.close()
        yield host


@pytest.fixture
def api(host: LocalHostProcess) -> Iterator[BatchAI]:
    client = BatchAI(host)
    yield client
    client.close()


def queue(host: LocalHostProcess) -> RequestQueue:
    connection = host.servicebus_connection_string
    assert connection, "the local host wrote its Service Bus door's connection string"
    return RequestQueue(connection, token=host.headers["Authorization"].removeprefix("Bearer "))


def test_a_job_sent_by_message_runs_and_succeeds(host: LocalHostProcess, api: BatchAI) -> None:
    outcome = queue(host).submit_job("e2e", "rg", "ws", "e", "by-message", job_body("echo made by a message"),
                                     wait=30)
    assert not isinstance(outcome, str) and outcome.status == 200, outcome
    assert outcome.id and outcome.id.endswith("/experiments/e/jobs/by-message")
    assert api.wait_state("by-message", *FINAL)["executionState"] == "succeeded"


def test_the_same_message_sent_twice_makes_one_job(host: LocalHostProcess, api: BatchAI) -> None:
    requests = queue(host)
    for _ in range(2):
        requests.submit_job("e2e", "rg", "ws", "e", "twice", job_body("true"), message_id="the-same-id")
    api.wait_state("twice", *FINAL)
    answer = requests.submit_job("e2e", "rg", "ws", "e", "twice", job_body("true"), message_id="another-id", wait=30)
    assert not isinstance(answer, str) and answer.status == 200  # an idempotent PUT, as over HTTP
    events = api.http.get(f"{WS}/experiments/e/jobs/twice/events").json()["value"]
    assert [e["type"] for e in events].count("Microsoft.BatchAI.JobQueued") == 1, "made once"
    names = [j["name"] for j in api.http.get(f"{WS}/experiments/e/jobs").json()["value"]]
    assert names.count("twice") == 1


def dead_letters(connection: str, queue_name: str, wanted: set[str]) -> dict[str, ServiceBusReceivedMessage]:
    found: dict[str, ServiceBusReceivedMessage] = {}
    with ServiceBusClient.from_connection_string(connection) as client, client.get_queue_receiver(
            queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        def all_found() -> bool:
            for message in receiver.receive_messages(max_message_count=50, max_wait_time=1):
                receiver.complete_message(message)
                found[str(message.message_id)] = message
            return wanted <= set(found)

        wait_until(f"{len(wanted)} dead letters", all_found, timeout=60, every=0.05,
                   describe=lambda: sorted(wanted - set(found)))
    return found


def test_every_kind_of_bad_message_is_dead_lettered_with_its_reason_and_nothing_changes(
        host: LocalHostProcess, api: BatchAI) -> None:
    bad = bad_job_messages(PATH, f"{WS}/clusters/c", LIMIT)
    assert len(bad) >= 15
    jobs_before = api.http.get(f"{WS}/experiments/e/jobs").json()["value"]
    cluster_before = api.cluster_props("c")["scaleSettings"]
    token = host.headers["Authorization"]
    connection = host.servicebus_connection_string
    assert connection
    with ServiceBusClient.from_connection_string(connection) as client, client.get_queue_sender(
            JOB_SUBMISSIONS) as sender:
        for kind, (body, props, _, _) in bad.items():
            sender.send_messages(ServiceBusMessage(body, message_id=f"bad: {kind}", application_properties=(
                {"Authorization": token} if props is None else props) or None))
    letters = dead_letters(connection, JOB_SUBMISSIONS, {f"bad: {kind}" for kind in bad})
    for kind, (_, _, reason, named) in bad.items():
        letter = letters[f"bad: {kind}"]
        assert letter.dead_letter_reason == reason, (kind, letter.dead_letter_error_description)
        assert named in (letter.dead_letter_error_description or ""), kind
        assert (letter.delivery_count or 0) <= 1, f"{kind}: never retried"
    assert api.http.get(f"{WS}/experiments/e/jobs").json()["value"] == jobs_before
    assert api.cluster_props("c")["scaleSettings"] == cluster_before


def batchai(host: LocalHostProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, finding the host (endpoint, token, door) through its data folder."""
    env = {**os.environ, "BATCHAI_DATA_DIR": str(host.data_dir), "COLUMNS": "200"}
    for name in ("BATCHAI_ENDPOINT", "BATCHAI_TOKEN", "BATCHAI_SERVICEBUS", "BATCHAI_CONFIG_FILE"):
        env.pop(name, None)
    env["BATCHAI_CONFIG_FILE"] = str(host.data_dir.parent / "no-config")
    return subprocess.run([sys.executable, "-m", "shared.cli", "--subscription", "e2e", *args], capture_output=True,
                          text=True, env=env,
                          cwd=REPO, timeout=120)


def test_the_cli_creates_a_job_and_resizes_a_cluster_by_message(host: LocalHostProcess, api: BatchAI,
                                                                tmp_path: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(json.dumps(job_body("echo via the queue")))
    where = ["-g", "rg", "-w", "ws"]
    made = batchai(host, "job", "create", "-n", "cli-queued", "-e", "e", "-f", str(config), *where, "--via-queue",
                   "-o", "json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == "cli-queued"
    assert api.wait_state("cli-queued", *FINAL)["executionState"] == "succeeded"
    refused = batchai(host, "job", "create", "-n", "bad/name", "-e", "e", "-f", str(config), *where, "--via-queue")
    assert refused.returncode == 1 and refused.stderr.startswith("batchai: error: InvalidParameter"), refused.stderr
    grown = batchai(host, "cluster", "resize", "-n", "c", "-t", "2", *where, "--via-queue", "-o", "json")
    assert grown.returncode == 0, grown.stderr
    api.wait_idle_nodes("c", 2)
    assert api.cluster_props("c")["scaleSettings"]["manual"]["targetNodeCount"] == 2


@pytest.mark.servicebus
def test_a_job_sent_to_service_bus_runs_on_a_host_using_service_bus(servicebus_broker: str, tmp_path: Path) -> None:
    """The Service Bus adapter's path: the SDK sends to the (test broker's) namespace, the host's
    pump takes the message through the Service Bus adapter, the reply comes back there."""
    env = {**HOST_ENV, "BATCHAI_MESSAGING": "servicebus", "BATCHAI_SERVICEBUS_CONNECTION": servicebus_broker}
    with running_host(tmp_path / "state", env, timeout=60) as host:
        api = BatchAI(host)
        api.cluster("c", {"manual": {"targetNodeCount": 1}})
        api.wait_idle_nodes("c", 1)
        requests = RequestQueue(servicebus_broker, token=host.headers["Authorization"].removeprefix("Bearer "),
                                reply_to=REPLIES)
        outcome = requests.submit_job("e2e", "rg", "ws", "e", "over-the-bus", job_body("true"), wait=60)
        assert not isinstance(outcome, str) and outcome.status == 200, outcome
        assert api.wait_state("over-the-bus", *FINAL)["executionState"] == "succeeded"
        rejected = requests.submit_job("e2e", "rg", "ws", "e", "refused", {"properties": {"nodeCount": 1}}, wait=60)
        assert not isinstance(rejected, str) and rejected.status == 400
        assert rejected.error and rejected.error["target"] == "properties.cluster"
        letter = dead_letters(servicebus_broker, JOB_SUBMISSIONS, {rejected.message_id})[rejected.message_id]
        assert letter.dead_letter_reason == "InvalidRequestContent"
        api.close()
