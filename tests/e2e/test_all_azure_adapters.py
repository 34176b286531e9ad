"""Every Azure adapter at once, as a deployment on Azure runs: the real local host with its state in the
Cosmos DB test server (BATCHAI_STORE=cosmos), its messages on the test broker speaking Service Bus's
dialect (BATCHAI_MESSAGING=servicebus) and its blobs on Azurite (BATCHAI_BLOBS=azure), takes a 2-node
job through its whole life: created, queued, running, its master's agent killed and the job requeued,
run again on fresh nodes, its outputs listed and downloaded from Azurite, and every change delivered
to a webhook."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters.azure.azure_blobs import AzureBlobStore
from shared.localhost.process import LocalHostProcess
from shared.ports.blob_store import Account
from tests.e2e.conftest import COSMOS_TEST_KEY
from tests.e2e.hosts import alive, running_host
from tests.e2e.polling import wait_until
from tests.e2e.test_node_failures import CLUSTER, WS, agent_pid, http, job, job_nodes, requeued_after
from tests.integration.test_event_delivery import Receiver, receivers

__all__ = ["http", "receivers"]  # the fixtures (http: a workspace with a 2-node cluster, on this module's host)

pytestmark = [pytest.mark.cosmos, pytest.mark.servicebus, pytest.mark.azurite]


@pytest.fixture(scope="module")
def host(cosmos_server: str, servicebus_broker: str, azurite: Any,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    env = {
        "BATCHAI_STORE": "cosmos", "BATCHAI_COSMOS_ENDPOINT": cosmos_server, "BATCHAI_COSMOS_KEY": COSMOS_TEST_KEY,
        "BATCHAI_COSMOS_DATABASE": f"all-azure-{uuid.uuid4().hex[:8]}", "BATCHAI_COSMOS_VERIFY_TLS": "false",
        "BATCHAI_COSMOS_ENDPOINT_DISCOVERY": "false",
        "BATCHAI_MESSAGING": "servicebus", "BATCHAI_SERVICEBUS_CONNECTION": servicebus_broker,
        "BATCHAI_BLOBS": "azure", "BATCHAI_BLOB_ENDPOINT": azurite.blob_endpoint,
        "BATCHAI_HEARTBEAT_SECONDS": "0.5",
    }
    with running_host(tmp_path_factory.mktemp("all-azure") / "state", env, timeout=60) as host:
        yield host


def listed(http: httpx.Client, name: str, output: str) -> dict[str, dict[str, Any]]:
    answer = http.post(f"{WS}/experiments/e/jobs/{name}/listOutputFiles", params={"outputdirectoryid": output})
    answer.raise_for_status()
    return {f["name"]: f for f in answer.json()["value"]}


def test_a_two_node_job_lives_its_whole_life_on_every_azure_adapter(
        http: httpx.Client, host: LocalHostProcess, azurite: Any, receivers: list[Receiver], tmp_path: Path) -> None:
    account = Account(azurite.account_name, azurite.account_key)
    blobs = AzureBlobStore(azurite.blob_endpoint)
    blobs.create_container(account, "outputs")
    receiver = Receiver()
    receivers.append(receiver)
    http.put(f"{WS}/eventSubscriptions/all", json={"properties": {
        "destination": {"endpointUrl": receiver.url}, "filter": {"experiments": ["e"]}}}).raise_for_status()
    wait_until("2 idle nodes", lambda: http.get(CLUSTER).json()["properties"]["nodeStateCounts"]["idleNodeCount"] == 2,
               timeout=90)

    gate, pids = tmp_path / "gate", tmp_path / "pids"
    command = (f"echo $$ >> {pids}; echo started; for i in $(seq 2400); do [ -e {gate} ] && break; sleep 0.05; done; "
               "[ -e {gate} ] || exit 9; echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.bin; echo finished")
    command = command.replace("{gate}", str(gate))
    http.put(f"{WS}/experiments/e/jobs/life", json={"properties": {
        "cluster": {"id": CLUSTER}, "nodeCount": 2,
        "mountVolumes": {"azureBlobFileSystems": [{
            "accountName": azurite.account_name, "containerName": "outputs", "relativeMountPath": "out",
            "credentials": {"accountKey": azurite.account_key}}]},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/out",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/out", "pathSuffix": "model"}],
        "customToolkitSettings": {"commandLine": command}}}).raise_for_status()

    wait_until("the first attempt to run", lambda: pids.exists() and pids.read_text().strip(), timeout=60)
    first_start = job(http, "life")["executionInfo"]["startTime"]
    first_nodes = job_nodes(http, "life")
    assert len(first_nodes) == 2
    victim = agent_pid(host, first_nodes[0])
    os.kill(victim, signal.SIGKILL)  # the master's node is lost
    print(f"requeued {requeued_after(http, 'life', first_start, time.monotonic()):.1f} s after the agent was killed")
    wait_until("the second attempt to run", lambda: len(pids.read_text().split()) >= 2, timeout=90)
    assert first_nodes[0] not in job_nodes(http, "life")

    gate.touch()
    props = wait_until("the job to end", lambda: (p := job(http, "life"))["executionState"] in ("succeeded", "failed")
                       and p, timeout=60)
    assert props["executionState"] == "succeeded", props
    assert not alive(victim)

    # Outputs: listed through the API, downloaded from Azurite by their signed URLs.
    model = listed(http, "life", "MODEL")["model.bin"]
    assert model["downloadUrl"].startswith(azurite.blob_endpoint.format(account=azurite.account_name))
    assert httpx.get(model["downloadUrl"]).text == "weights\n"
    stdout = listed(http, "life", "stdouterr")["stdout.txt"]
    assert httpx.get(stdout["downloadUrl"]).text.endswith("started\nfinished\n")

    # Events: every change, through the Service Bus topic and the deliveries queue, to the webhook.
    def changes() -> list[tuple[Any, Any]]:
        got = sorted(receiver.events(), key=lambda e: int(e["sequence"]))
        return [(e["data"]["previousState"], e["data"]["state"]) for e in got
                if e["source"] == f"{WS}/experiments/e/jobs/life"]

    wait_until("the success to be delivered", lambda: ("running", "succeeded") in changes(), timeout=30)
    states = changes()
    assert states[0] == (None, "queued") and states[-1] == ("running", "succeeded"), states
    assert ("running", "queued") in states, states  # the requeue after the lost node
    assert states.count(("queued", "running")) == 2, states
