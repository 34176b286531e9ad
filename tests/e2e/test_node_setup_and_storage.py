"""Node setup and storage end to end: setup tasks that succeed or fail (the node is then unusable and
the cluster says why), and a job whose logs and outputs live in a blob container on Azurite, listed
while it runs and downloaded through SAS URLs afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters.azure.azure_blobs import AzureBlobStore
from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from shared.ports.blob_store import Account

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/setup"
Q = {"api-version": "2018-05-01"}
SETUP_SECRET = "setup-" + "secret-never-shown"


@pytest.fixture(scope="module")
def blob_host(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    """A local host whose blob port is Azurite: nodes pull and push blob-backed folders."""
    env = {"BATCHAI_BLOBS": "azure", "BATCHAI_BLOB_ENDPOINT": azurite.blob_endpoint}
    with running_host(tmp_path_factory.mktemp("blob-host") / "state", env) as host:
        yield host


@pytest.fixture(scope="module")
def http(blob_host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=blob_host.endpoint, params=Q, timeout=30, headers=blob_host.headers) as client:
        client.put(WS, json={"location": "local"}).raise_for_status()
        client.put(f"{WS}/experiments/e", json={}).raise_for_status()
        yield client


def cluster(http: httpx.Client, name: str, node_setup: dict[str, Any]) -> dict[str, Any]:
    http.put(f"{WS}/clusters/{name}", json={"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}, "nodeSetup": node_setup,
    }}).raise_for_status()
    return wait_until(f"{name}'s node to be set up", lambda: settled(http, name))


def settled(http: httpx.Client, name: str) -> dict[str, Any] | None:
    props = http.get(f"{WS}/clusters/{name}").json()["properties"]
    counts = props["nodeStateCounts"]
    return props if counts["idleNodeCount"] + counts["unusableNodeCount"] == 1 else None


def test_a_setup_task_runs_with_its_variables_and_secret_and_keeps_its_output(
        http: httpx.Client, blob_host: LocalHostProcess, tmp_path: Path) -> None:
    command = 'echo "setup $STAGE on $(hostname)"; printf %s "$SETUP_TOKEN" | sha256sum; ls -d $AZ_BATCHAI_MOUNT_ROOT'
    props = cluster(http, "good", {"setupTask": {
        "commandLine": command, "stdOutErrPathPrefix": str(tmp_path),
        "environmentVariables": [{"name": "STAGE", "value": "one"}],
        "secrets": [{"name": "SETUP_TOKEN", "value": SETUP_SECRET}]}})
    assert props["nodeStateCounts"]["idleNodeCount"] == 1 and "errors" not in props
    suffix = props["nodeSetup"]["setupTask"]["stdOutErrPathSuffix"]
    [node_dir] = (tmp_path / suffix).iterdir()
    stdout = (node_dir / "stdout.txt").read_text()
    assert stdout.startswith("setup one on ") and hashlib.sha256(SETUP_SECRET.encode()).hexdigest() in stdout
    assert "setup task exited with code 0" in (node_dir / "execution.log").read_text()
    assert SETUP_SECRET not in http.get(f"{WS}/clusters/good").text
    for path in blob_host.data_dir.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".txt", ".json"):
            assert SETUP_SECRET not in path.read_text(errors="replace"), path


def test_a_failing_setup_task_makes_the_node_unusable_and_the_cluster_says_why(
        http: httpx.Client, tmp_path: Path) -> None:
    props = cluster(http, "bad", {"setupTask": {"commandLine": "echo no luck >&2; exit 5",
                                                "stdOutErrPathPrefix": str(tmp_path)}})
    assert props["nodeStateCounts"]["unusableNodeCount"] == 1
    [error] = props["errors"]
    assert error["code"] == "SetupTaskFailed" and "code 5" in error["message"], error
    assert error["details"][0]["name"] == "nodeId"


def test_a_volume_that_cannot_be_mounted_makes_the_node_unusable(http: httpx.Client) -> None:
    props = cluster(http, "nokey", {"mountVolumes": {"azureFileShares": [{
        "accountName": "acc", "azureFileUrl": "https://acc.file.core.windows.net/share", "relativeMountPath": "vault",
        "credentials": {"accountKeySecretReference": {"sourceVault": {"id": "/subscriptions/s/resourceGroups/r/providers/"
                                                                        "Microsoft.KeyVault/vaults/v"},
                                                      "secretUrl": "https://v.vault.azure.net/secrets/k"}}}]}})
    [error] = props["errors"]
    assert error["code"] == "NodeSetupFailed" and "vault" in error["message"], error


def test_a_job_keeps_its_logs_and_outputs_in_a_blob_container_on_azurite(
        http: httpx.Client, azurite: Any, tmp_path: Path) -> None:
    account = Account(azurite.account_name, azurite.account_key)
    store = AzureBlobStore(azurite.blob_endpoint)
    store.create_container(account, "results")
    cluster(http, "blobby", {})
    gate = tmp_path / "gate"
    command = (f"echo started; while [ ! -e {gate} ]; do sleep 0.05; done; "
               "echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.bin; echo finished")
    http.put(f"{WS}/experiments/e/jobs/blob", json={"properties": {
        "cluster": {"id": f"{WS}/clusters/blobby"}, "nodeCount": 1,
        "mountVolumes": {"azureBlobFileSystems": [{
            "accountName": azurite.account_name, "containerName": "results", "relativeMountPath": "bfs",
            "credentials": {"accountKey": azurite.account_key}}]},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs", "pathSuffix": "model"}],
        "customToolkitSettings": {"commandLine": command}}}).raise_for_status()

    def listed(output: str) -> dict[str, dict[str, Any]]:
        answer = http.post(f"{WS}/experiments/e/jobs/blob/listOutputFiles", params={"outputdirectoryid": output})
        answer.raise_for_status()
        return {f["name"]: f for f in answer.json()["value"]}

    running = wait_until("stdout.txt on Azurite while the job runs",
                       lambda: (f := listed("stdouterr").get("stdout.txt")) and httpx.get(f["downloadUrl"]).text
                       == "started\n" and f)
    assert running["downloadUrl"].startswith(azurite.blob_endpoint.format(account=azurite.account_name))
    assert "sig=" in running["downloadUrl"]
    gate.touch()
    props = wait_until("the job to end", lambda: (p := http.get(f"{WS}/experiments/e/jobs/blob").json()["properties"])
                     ["executionState"] in ("succeeded", "failed") and p)
    assert props["executionState"] == "succeeded", props
    model = listed("MODEL")["model.bin"]
    assert httpx.get(model["downloadUrl"]).text == "weights\n"
    assert model["properties"]["contentLength"] == len("weights\n")
    stdout = listed("stdouterr")["stdout.txt"]
    assert httpx.get(stdout["downloadUrl"]).text == "started\nfinished\n"
    names = [e.name for e in store.list(account, "results", "", delimiter=None)]
    assert any(n.endswith("/model/model.bin") for n in names), names


def test_a_cluster_level_container_is_pulled_before_each_job(http: httpx.Client, azurite: Any) -> None:
    account = Account(azurite.account_name, azurite.account_key)
    store = AzureBlobStore(azurite.blob_endpoint)
    store.create_container(account, "shared")
    cluster(http, "blobcluster", {"mountVolumes": {"azureBlobFileSystems": [{
        "accountName": azurite.account_name, "containerName": "shared", "relativeMountPath": "data",
        "credentials": {"accountKey": azurite.account_key}}]}})
    store.upload_bytes(account, "shared", "inputs/greeting.txt", b"written after the node was set up\n")
    http.put(f"{WS}/experiments/e/jobs/reader", json={"properties": {
        "cluster": {"id": f"{WS}/clusters/blobcluster"}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/data",
        "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_MOUNT_ROOT/data/inputs/greeting.txt"}}}
             ).raise_for_status()
    props = wait_until("the job to end", lambda: (p := http.get(f"{WS}/experiments/e/jobs/reader").json()
                                                  ["properties"])["executionState"] in ("succeeded", "failed") and p)
    assert props["executionState"] == "succeeded", props
    files = http.post(f"{WS}/experiments/e/jobs/reader/listOutputFiles", params={"outputdirectoryid": "stdouterr"})
    stdout = {f["name"]: f for f in files.json()["value"]}["stdout.txt"]
    assert httpx.get(stdout["downloadUrl"]).text == "written after the node was set up\n"


def test_job_volumes_of_a_file_server_and_an_unmanaged_file_system_are_folders_of_the_data_folder(
        http: httpx.Client, blob_host: LocalHostProcess) -> None:
    http.put(f"{WS}/fileServers/nfs", json={"properties": {
        "vmSize": "STANDARD_D2", "sshConfiguration": {"userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}},
        "dataDisks": {"diskSizeInGB": 10, "diskCount": 1, "storageAccountType": "Standard_LRS"}}}).raise_for_status()
    cluster(http, "volumes", {})
    command = "echo nfs > $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/from-job && echo own > $AZ_BATCHAI_JOB_MOUNT_ROOT/own/from-job"
    http.put(f"{WS}/experiments/e/jobs/volumes", json={"properties": {
        "cluster": {"id": f"{WS}/clusters/volumes"}, "nodeCount": 1,
        "mountVolumes": {"fileServers": [{"fileServer": {"id": f"{WS}/fileServers/nfs"}, "relativeMountPath": "nfs",
                                          "sourceDirectory": "projects"}],
                         "unmanagedFileSystems": [{"mountCommand": "mount -t tmpfs none", "relativeMountPath": "own"}]},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs",
        "customToolkitSettings": {"commandLine": command}}}).raise_for_status()
    props = wait_until("the job to end", lambda: (p := http.get(f"{WS}/experiments/e/jobs/volumes").json()
                                                  ["properties"])["executionState"] in ("succeeded", "failed") and p)
    assert props["executionState"] == "succeeded", props
    storage = blob_host.data_dir / "storage"
    [nfs_file] = (storage / "fileservers").glob("*/projects/from-job")
    assert nfs_file.read_text() == "nfs\n"
    [own_file] = (storage / "unmanaged").glob("*/from-job")
    assert own_file.read_text() == "own\n"
    files = http.post(f"{WS}/experiments/e/jobs/volumes/listOutputFiles", params={"outputdirectoryid": "stdouterr"})
    assert "stdout.txt" in {f["name"] for f in files.json()["value"]}  # listed from the file server's folder
