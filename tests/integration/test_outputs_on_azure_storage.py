"""listOutputFiles when the nodes are VMs: outputs on Azure file shares and blob containers are
listed with SAS URLs that download them; outputs on a file server or an unmanaged file system get
a plain 409 that says where they are and how to read them.

Blob containers: Azurite (the real emulator). File shares: Azurite has no file service, so a small
stand-in of the Azure Files REST API (tests/fakes/azure_files.py) serves them; it checks each
listing's SharedKey signature with the account key and each SAS URL's signature, as Azure does.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import errors, lanes
from shared.adapters.azure.azure_blobs import AzureBlobStore
from shared.adapters.local.local_file_servers import LocalFileServers
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.api import clusters, experiments, file_servers, jobs, workspaces
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.ports.blob_store import Account
from shared.ports.clock import SystemClock
from shared.resources import CONTAINERS, R
from shared.settings import Settings
from shared.wakeups import Wakeups
from tests.conftest import AzuriteServer
from tests.fakes.azure_files import FakeAzureFiles
from tests.integration.fake_pool import FakeVmPool

SUB, RG = "sub", "rg"
WS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/ws"
ROUTE = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws"}
Q = {"api-version": "2018-05-01"}
SHARE_ACCOUNT = "filesaccount"
SUBNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"
SHARE_KEY = "c2hhcmUta2V5LWZvci10aGUtZmFrZS1maWxlLXNlcnZpY2U="

pytestmark = pytest.mark.azurite


@pytest.fixture
def files() -> Iterator[FakeAzureFiles]:
    with FakeAzureFiles(SHARE_ACCOUNT, SHARE_KEY) as fake:
        yield fake


@pytest.fixture
def svc(tmp_path: Path, azurite: AzuriteServer) -> Iterator[Services]:
    """The control plane of nodes on VMs (no local folders stand for shares), blobs on Azurite."""
    settings = Settings(data_dir=tmp_path, pool="vmss", blobs="azure", blob_endpoint=azurite.blob_endpoint,
                        default_subnet_id=SUBNET)
    store = SqliteStateStore(tmp_path / "state.db")
    store.open(CONTAINERS)
    clock = SystemClock()  # download URLs expire in real time
    services = Services(settings=settings, store=store, clock=clock, messaging=SqliteMessaging(tmp_path / "m.db", clock),
                        pool=FakeVmPool(), wakeups=Wakeups(), file_servers=LocalFileServers(),
                        blobs=AzureBlobStore(azurite.blob_endpoint))
    for queue, options in lanes.STATIC_QUEUES.items():
        services.messaging.create_queue(queue, options)
    yield services
    services.close()


def call(handler: Any, svc: Services, route: dict[str, str], body: Any = None, query: dict[str, str] | None = None,
         method: str = "PUT") -> Any:
    req = ApiRequest(method, "http://h/x", route={**ROUTE, **route}, query={**Q, **(query or {})},
                     body=b"" if body is None else json.dumps(body).encode())
    return handler(svc, req)


@pytest.fixture
def job(svc: Services, files: FakeAzureFiles, azurite: AzuriteServer) -> dict[str, Any]:
    """A job whose outputs are on a share, a blob container, a file server and an unmanaged file system."""
    call(workspaces.create, svc, {}, {"location": "westeurope"})
    call(experiments.create, svc, {"experimentName": "e"})
    call(file_servers.create, svc, {"fileServerName": "nfs"}, {"properties": {
        "vmSize": "STANDARD_D2_V2", "dataDisks": {"diskSizeInGB": 10, "diskCount": 1, "storageAccountType": "Standard_LRS"},
        "sshConfiguration": {"userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}})
    call(clusters.create, svc, {"clusterName": "c"}, {"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 0}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}})
    AzureBlobStore(azurite.blob_endpoint).create_container(Account(azurite.account_name, azurite.account_key), "outputs")
    root = "$AZ_BATCHAI_JOB_MOUNT_ROOT"
    answer = call(jobs.create, svc, {"experimentName": "e", "jobName": "j"}, {"properties": {
        "cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": f"{root}/afs",
        "customToolkitSettings": {"commandLine": "true"},
        "mountVolumes": {
            "azureFileShares": [{"accountName": SHARE_ACCOUNT, "azureFileUrl": files.share_url("results"),
                                 "relativeMountPath": "afs", "credentials": {"accountKey": SHARE_KEY}}],
            "azureBlobFileSystems": [{"accountName": azurite.account_name, "containerName": "outputs",
                                      "relativeMountPath": "bfs", "credentials": {"accountKey": azurite.account_key}}],
            "fileServers": [{"fileServer": {"id": f"{WS}/fileServers/nfs"}, "relativeMountPath": "nfs",
                             "sourceDirectory": "runs"}],
            "unmanagedFileSystems": [{"mountCommand": "mount -t nfs 10.0.0.9:/x", "relativeMountPath": "own"}]},
        "outputDirectories": [{"id": "model", "pathPrefix": f"{root}/afs", "pathSuffix": "model"},
                              {"id": "blobs", "pathPrefix": f"{root}/bfs"},
                              {"id": "nfs", "pathPrefix": f"{root}/nfs"},
                              {"id": "own", "pathPrefix": f"{root}/own"}]}})
    assert answer.status == 200, answer.body
    doc = svc.store.read(R, SUB, f"job|{RG}|ws|e|j")
    assert doc is not None
    return doc


def listed(svc: Services, output: str, directory: str = "") -> Any:
    query = {"outputdirectoryid": output, **({"directory": directory} if directory else {})}
    return call(jobs.list_output_files, svc, {"experimentName": "e", "jobName": "j"}, query=query, method="POST")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read()


def test_outputs_on_a_file_share_are_listed_with_sas_urls(svc: Services, files: FakeAzureFiles,
                                                          job: dict[str, Any]) -> None:
    segment = job["resource"]["properties"]["jobOutputDirectoryPathSegment"]
    files.put_file("results", f"{segment}/model/weights.bin", b"\x00\x01\x02")
    files.put_file("results", f"{segment}/model/epochs/1.txt", b"epoch 1")
    files.put_file("results", f"{segment}/stdouterr/stdout.txt", b"hello from the job\n")
    answer = listed(svc, "model")
    assert answer.status == 200, answer.body
    entries = {e["name"]: e for e in answer.body["value"]}
    assert entries["epochs"] == {"name": "epochs", "fileType": "directory"}
    weights = entries["weights.bin"]
    assert weights["fileType"] == "file" and weights["properties"]["contentLength"] == 3
    assert weights["properties"]["lastModified"]
    assert fetch(weights["downloadUrl"]) == b"\x00\x01\x02"  # the SAS URL works, for reading only
    assert "sp=r" in weights["downloadUrl"] and SHARE_KEY not in weights["downloadUrl"]
    [epoch] = listed(svc, "model", "epochs").body["value"]
    assert fetch(epoch["downloadUrl"]) == b"epoch 1"
    [stdout] = listed(svc, "stdouterr").body["value"]
    assert fetch(stdout["downloadUrl"]) == b"hello from the job\n"
    assert listed(svc, "model", "missing").body["value"] == []
    listing = next(r for r in files.requests if "comp" in r.query)
    assert listing.headers["Authorization"].startswith(f"SharedKey {SHARE_ACCOUNT}:")  # checked by the fake


def test_outputs_in_a_blob_container_are_listed_with_sas_urls(svc: Services, azurite: AzuriteServer,
                                                               job: dict[str, Any]) -> None:
    segment = job["resource"]["properties"]["jobOutputDirectoryPathSegment"]
    store, account = AzureBlobStore(azurite.blob_endpoint), Account(azurite.account_name, azurite.account_key)
    store.upload_bytes(account, "outputs", f"{segment}/metrics.json", b'{"loss": 0.1}')
    store.upload_bytes(account, "outputs", f"{segment}/checkpoints/c1.pt", b"ckpt")
    answer = listed(svc, "blobs")
    assert answer.status == 200, answer.body
    entries = {e["name"]: e for e in answer.body["value"]}
    assert entries["checkpoints"]["fileType"] == "directory"
    assert entries["metrics.json"]["properties"]["contentLength"] == 13
    assert fetch(entries["metrics.json"]["downloadUrl"]) == b'{"loss": 0.1}'
    [checkpoint] = listed(svc, "blobs", "checkpoints").body["value"]
    assert fetch(checkpoint["downloadUrl"]) == b"ckpt"


def test_outputs_on_a_file_server_say_plainly_where_they_are(svc: Services, job: dict[str, Any]) -> None:
    with pytest.raises(errors.Conflict) as refused:
        listed(svc, "nfs")
    assert refused.value.status == 409 and refused.value.code == "OutputDirectoryNotListable"
    assert refused.value.target == "outputdirectoryid"
    segment = job["resource"]["properties"]["jobOutputDirectoryPathSegment"]
    assert f"file server 'nfs' (NFS 127.0.0.1:/mnt/data/runs/{segment})" in refused.value.message
    assert "listRemoteLoginInformation" in refused.value.message


def test_outputs_on_an_unmanaged_file_system_say_plainly_why_not(svc: Services, job: dict[str, Any]) -> None:
    with pytest.raises(errors.Conflict, match="unmanaged file system") as refused:
        listed(svc, "own")
    assert refused.value.code == "OutputDirectoryNotListable"


def test_a_share_refusing_the_key_is_a_plain_409(svc: Services, files: FakeAzureFiles, job: dict[str, Any]) -> None:
    files.key = "d3Jvbmcta2V5"  # the account's key was rotated since the job was made
    with pytest.raises(errors.Conflict, match="could not be listed") as refused:
        listed(svc, "model")
    assert SHARE_KEY not in refused.value.message
