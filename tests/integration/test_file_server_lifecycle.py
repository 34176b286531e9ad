"""A file server's life through the API with the Azure adapter against the ARM fake: created
`creating`, observed by the timer's rounds until `succeeded` with the addresses ARM gave, mounted by
a cluster's nodes at that internal IP, failures shown in `errors`, and a delete that leaves nothing
in ARM (carried on by later rounds after the resource is gone from the API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import errors, file_servers, node_storage
from shared.adapters.azure.azure_file_servers import AzureFileServers
from shared.api import file_servers as file_servers_api
from shared.api.generic import delete_resource, get_resource
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.ids import FILE_SERVER
from shared.ports.state_store import Query
from shared.resources import R
from tests.contract.test_file_servers import RG, SSH_KEY, StaticToken
from tests.fakes.arm_vms import FakeArmVms
from tests.integration.test_dispatch_and_scaling import ROUTE, Q, WS, make_services

BODY = {"properties": {"vmSize": "STANDARD_D2_V2", "sshConfiguration": {
    "publicIPsToAllow": ["203.0.113.7"],
    "userAccountSettings": {"adminUserName": "fsadmin", "adminUserSshPublicKey": SSH_KEY}},
    "dataDisks": {"diskSizeInGB": 64, "diskCount": 2, "storageAccountType": "Standard_LRS"}}}
PARTS = ("Microsoft.Network/networkSecurityGroups", "Microsoft.Network/publicIPAddresses",
         "Microsoft.Network/networkInterfaces", "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks")


@pytest.fixture
def fake_arm() -> Iterator[FakeArmVms]:
    with FakeArmVms() as fake:
        yield fake


@pytest.fixture
def svc(tmp_path: Path, fake_arm: FakeArmVms) -> Iterator[Services]:
    subnet = fake_arm.add_subnet("net", "vnet", "nodes", "10.2.0.0/24")
    services = make_services(tmp_path)
    services.file_servers = AzureFileServers(fake_arm.subscription_id, RG, StaticToken(),  # type: ignore[arg-type]
                                             base_url=fake_arm.base_url, default_subnet_id=subnet)
    yield services
    services.close()


def request(method: str, name: str, body: Any = None) -> ApiRequest:
    return ApiRequest(method, "http://h/x", route={**ROUTE, "fileServerName": name}, query=Q,
                      body=b"" if body is None else json.dumps(body).encode())


def create(svc: Services, name: str = "nfs", body: dict[str, Any] = BODY) -> dict[str, Any]:
    answer = file_servers_api.create(svc, request("PUT", name, body))
    assert answer.status == 200, answer.body
    return answer.body


def read(svc: Services, name: str = "nfs") -> dict[str, Any]:
    answer = get_resource(FILE_SERVER, svc, request("GET", name))
    assert answer.status == 200, answer.body
    return answer.body["properties"]


def rounds_until_decided(svc: Services, fake: FakeArmVms, name: str = "nfs", limit: int = 10) -> int:
    for round_ in range(1, limit + 1):
        fake.settle()
        file_servers.reconcile_all(svc)
        if read(svc, name)["provisioningState"] != "creating":
            return round_
    pytest.fail("still creating")


def test_created_creating_then_succeeded_with_arms_addresses(svc: Services, fake_arm: FakeArmVms) -> None:
    created = create(svc)["properties"]
    assert created["provisioningState"] == "creating" and "mountSettings" not in created
    assert created["subnet"]["id"] == svc.file_servers.default_subnet_id()  # the deployment's default
    assert fake_arm.names("Microsoft.Network/networkSecurityGroups")  # the first part was started at once
    assert create(svc)["properties"]["provisioningState"] == "creating"  # a repeated PUT changes nothing
    rounds_until_decided(svc, fake_arm)
    props = read(svc)
    nic = fake_arm.get("Microsoft.Network/networkInterfaces", fake_arm.names("Microsoft.Network/networkInterfaces")[0])
    ip = fake_arm.get("Microsoft.Network/publicIPAddresses", fake_arm.names("Microsoft.Network/publicIPAddresses")[0])
    assert props["provisioningState"] == "succeeded" and "errors" not in props
    assert props["mountSettings"] == {
        "mountPoint": "/mnt/data",
        "fileServerInternalIP": nic.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
        "fileServerPublicIP": ip.body["properties"]["ipAddress"]}
    assert props["mountSettings"]["fileServerInternalIP"].startswith("10.2.0.")
    rule = fake_arm.get("Microsoft.Network/networkSecurityGroups", fake_arm.names(
        "Microsoft.Network/networkSecurityGroups")[0]).body["properties"]["securityRules"][0]["properties"]
    assert rule["sourceAddressPrefixes"] == ["203.0.113.7"]
    vm = fake_arm.calls("PUT", "/virtualMachines/")[0].body
    assert "adminPassword" not in vm["properties"]["osProfile"]
    assert vm["tags"] == {"batchai-file-server": f"{WS}/fileServers/nfs"}

    # Nodes mount it by the internal IP it reports.
    volumes = node_storage.resolved_volumes(svc, {"fileServers": [{"fileServer": {"id": f"{WS}/fileServers/nfs"},
                                                                   "relativeMountPath": "nfs"}]}, "mountVolumes")
    assert volumes[0]["serverAddress"] == props["mountSettings"]["fileServerInternalIP"]
    assert volumes[0]["exportPath"] == "/mnt/data"


def test_a_file_server_not_ready_cannot_be_mounted_yet(svc: Services) -> None:
    create(svc)
    with pytest.raises(errors.InvalidParameter, match="not ready \\(provisioningState creating"):
        node_storage.resolved_volumes(svc, {"fileServers": [{"fileServer": {"id": f"{WS}/fileServers/nfs"},
                                                             "relativeMountPath": "nfs"}]}, "mountVolumes")


def test_failure_is_shown_in_errors(svc: Services, fake_arm: FakeArmVms) -> None:
    create(svc)
    for _ in range(3):
        fake_arm.settle()
        file_servers.reconcile_all(svc)
    assert fake_arm.names("Microsoft.Compute/virtualMachines")
    fake_arm.fail_vm(fake_arm.names("Microsoft.Compute/virtualMachines")[0], "Allocation failed: no capacity.")
    rounds_until_decided(svc, fake_arm)
    props = read(svc)
    assert props["provisioningState"] == "failed" and "mountSettings" not in props
    assert props["errors"][0]["code"] == "FileServerProvisioningFailed"
    assert "Allocation failed: no capacity." in props["errors"][0]["message"]


def test_an_operation_failing_for_now_is_shown_and_retried(svc: Services, fake_arm: FakeArmVms) -> None:
    fake_arm.refuse_next_put("Microsoft.Network/networkSecurityGroups", 409, "AnotherOperationInProgress",
                             "Another operation is in progress.")
    props = create(svc)["properties"]
    assert props["provisioningState"] == "creating"
    assert props["errors"][0]["code"] == "FileServerOperationFailed"
    assert "Another operation is in progress." in props["errors"][0]["message"]
    rounds_until_decided(svc, fake_arm)
    assert read(svc)["provisioningState"] == "succeeded" and "errors" not in read(svc)


def test_delete_removes_everything_in_later_rounds(svc: Services, fake_arm: FakeArmVms) -> None:
    create(svc)
    rounds_until_decided(svc, fake_arm)
    assert delete_resource(FILE_SERVER, svc, request("DELETE", "nfs")).status == 200
    with pytest.raises(errors.ResourceNotFound):  # gone from the API at once
        get_resource(FILE_SERVER, svc, request("GET", "nfs"))
    teardowns = svc.store.query(R, Query(where={"kind": file_servers.TEARDOWN}))
    assert len(teardowns) == 1
    for _ in range(5):
        fake_arm.settle()
        file_servers.reconcile_all(svc)
    assert not svc.store.query(R, Query(where={"kind": file_servers.TEARDOWN}))
    for type_ in PARTS:
        assert fake_arm.names(type_) == [], type_
    # The same name again makes a new server with resources of its own.
    create(svc)
    rounds_until_decided(svc, fake_arm)
    assert read(svc)["provisioningState"] == "succeeded"


def test_a_creating_file_server_deleted_with_its_workspace_leaves_nothing(svc: Services, fake_arm: FakeArmVms) -> None:
    from shared.ids import WORKSPACE

    create(svc)
    fake_arm.settle()
    file_servers.reconcile_all(svc)
    answer = delete_resource(WORKSPACE, svc, ApiRequest("DELETE", "http://h/x", route=ROUTE, query=Q))
    assert answer.status == 200
    for _ in range(5):
        fake_arm.settle()
        file_servers.reconcile_all(svc)
    for type_ in PARTS:
        assert fake_arm.names(type_) == [], type_
    assert not svc.store.query(R, Query(where={"kind": file_servers.TEARDOWN}))


def test_without_a_subnet_or_a_default_the_create_is_a_400(svc: Services, fake_arm: FakeArmVms) -> None:
    svc.file_servers = AzureFileServers(fake_arm.subscription_id, RG, StaticToken(),  # type: ignore[arg-type]
                                        base_url=fake_arm.base_url)
    with pytest.raises(errors.InvalidParameter) as refused:
        create(svc)
    assert refused.value.target == "properties.subnet"
    with pytest.raises(errors.ResourceNotFound):  # nothing written
        get_resource(FILE_SERVER, svc, request("GET", "nfs"))
    assert not fake_arm.requests
    subnet = fake_arm.add_subnet("net", "vnet", "other", "10.3.0.0/24")
    props = create(svc, body={"properties": {**BODY["properties"], "subnet": {"id": subnet}}})["properties"]
    assert props["subnet"] == {"id": subnet}
    assert rounds_until_decided(svc, fake_arm) and read(svc)["mountSettings"]["fileServerInternalIP"].startswith("10.3.0.")
