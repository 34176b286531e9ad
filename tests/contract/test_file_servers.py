"""The FileServers contract: one body per case, run against every adapter (local folders, Azure VMs).

The Azure adapter talks to an in-process stand-in of ARM's Compute and Network APIs
(tests/fakes/arm_vms.py) that checks every request body against the SDK's own models and ARM's
rules; nothing there finishes until the test lets time pass (``settle``). Then come the cases only
the Azure adapter has: the requests ARM gets, the user data (``cloud-init schema``), a failure, and
what a delete leaves (nothing).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.credentials import AccessToken

from shared.adapters.azure.azure_file_servers import AzureFileServers
from shared.adapters.local.local_file_servers import LocalFileServers
from shared.file_server_boot import SETUP_SCRIPT
from shared.ports.file_servers import FileServerError, FileServers, FileServerSpec, FileServerState

try:  # `python -m pytest` from the repository root
    from tests.fakes.arm_vms import FakeArmVms
except ModuleNotFoundError:  # plain `pytest`: tests/ itself is on sys.path
    from fakes.arm_vms import FakeArmVms  # type: ignore[no-redef]

RG = "batchai-rg"
SSH_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDtest test@example"
NETWORK_TYPES = ("Microsoft.Network/networkSecurityGroups", "Microsoft.Network/publicIPAddresses",
                 "Microsoft.Network/networkInterfaces")


class StaticToken:
    """A credential for the fake: any bearer token will do."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", 2**31)


def make_spec(server_id: str = "fs0123456789abcdef", **overrides: Any) -> FileServerSpec:
    values: dict[str, Any] = dict(server_id=server_id, vm_size="STANDARD_D2_V2", admin_user_name="azureuser",
                                  admin_ssh_public_key=SSH_KEY, disk_count=3, disk_size_gb=128,
                                  storage_account_type="Premium_LRS", caching_type="readonly", location="westeurope",
                                  tags={"batchai-file-server": "fs"})
    values.update(overrides)
    return FileServerSpec(**values)


class Adapter:
    """An adapter under test, and how time passes for it (nothing to wait for locally)."""

    def __init__(self, servers: FileServers, settle: Callable[[], None], subnet: str | None) -> None:
        self.servers, self.settle, self.subnet = servers, settle, subnet

    def provisioned(self, spec: FileServerSpec, rounds: int = 10) -> tuple[FileServerState, int]:
        """Rounds until the server is no longer creating: (its state, how many rounds it took)."""
        for round_ in range(1, rounds + 1):
            state = self.servers.provision(spec)
            if state.stage != "creating":
                return state, round_
            self.settle()
        pytest.fail(f"still creating after {rounds} rounds")

    def deleted(self, server_id: str, rounds: int = 10) -> int:
        for round_ in range(1, rounds + 1):
            if self.servers.delete(server_id):
                return round_
            self.settle()
        pytest.fail(f"still there after {rounds} rounds")


@pytest.fixture
def fake_arm() -> Iterator[FakeArmVms]:
    with FakeArmVms() as fake:
        yield fake


def azure_adapter(fake: FakeArmVms, default_subnet: bool = True) -> AzureFileServers:
    subnet = fake.add_subnet("net", "vnet", "nodes", "10.1.0.0/24")
    return AzureFileServers(fake.subscription_id, RG, StaticToken(), base_url=fake.base_url,  # type: ignore[arg-type]
                            default_subnet_id=subnet if default_subnet else None)


@pytest.fixture(params=["local", "azure"])
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    if request.param == "local":
        yield Adapter(LocalFileServers(), lambda: None, None)
        return
    with FakeArmVms() as fake:
        servers = azure_adapter(fake)
        yield Adapter(servers, fake.settle, servers.default_subnet_id())
        servers.close()


# ---------------------------------------------------------------- the contract


def test_provisioned_server_reports_its_addresses_and_mount_point(adapter: Adapter) -> None:
    state, _ = adapter.provisioned(make_spec())
    assert state.stage == "succeeded", state.details
    assert state.internal_ip and state.public_ip and state.mount_point == "/mnt/data"
    assert adapter.servers.provision(make_spec()) == state  # asking again changes nothing


def test_delete_removes_the_server_and_repeats_harmlessly(adapter: Adapter) -> None:
    adapter.provisioned(make_spec())
    adapter.deleted("fs0123456789abcdef")
    assert adapter.servers.delete("fs0123456789abcdef") is True
    assert adapter.servers.delete("fsneverexisted") is True


# ---------------------------------------------------------------- Azure only


def test_azure_makes_nsg_public_ip_nic_then_vm_one_round_each(fake_arm: FakeArmVms) -> None:
    servers = azure_adapter(fake_arm)
    adapter = Adapter(servers, fake_arm.settle, None)
    state, rounds = adapter.provisioned(make_spec())
    assert rounds == 5  # four parts, each started once the one before is ready, then the answer
    puts = [r.path.rsplit("/providers/", 1)[1] for r in fake_arm.calls("PUT")]
    assert puts == ["Microsoft.Network/networkSecurityGroups/fs0123456789abcdef-nsg",
                    "Microsoft.Network/publicIPAddresses/fs0123456789abcdef-ip",
                    "Microsoft.Network/networkInterfaces/fs0123456789abcdef-nic",
                    "Microsoft.Compute/virtualMachines/fs0123456789abcdef"]
    nic = fake_arm.get("Microsoft.Network/networkInterfaces", "fs0123456789abcdef-nic").body["properties"]
    config = nic["ipConfigurations"][0]["properties"]
    assert config["subnet"]["id"] == servers.default_subnet_id()
    assert state.internal_ip == config["privateIPAddress"] and state.internal_ip.startswith("10.1.0.")
    ip = fake_arm.get("Microsoft.Network/publicIPAddresses", "fs0123456789abcdef-ip").body
    assert state.public_ip == ip["properties"]["ipAddress"]
    assert ip["sku"] == {"name": "Standard"} and ip["properties"]["publicIPAllocationMethod"] == "Static"
    assert nic["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/fs0123456789abcdef-nsg")
    rules = fake_arm.get("Microsoft.Network/networkSecurityGroups", "fs0123456789abcdef-nsg").body["properties"]
    assert [(r["properties"]["destinationPortRange"], r["properties"]["sourceAddressPrefix"])
            for r in rules["securityRules"]] == [("22", "*")]


def test_azure_vm_has_the_data_disks_asked_for(fake_arm: FakeArmVms) -> None:
    Adapter(azure_adapter(fake_arm), fake_arm.settle, None).provisioned(make_spec())
    vm = fake_arm.calls("PUT", "/virtualMachines/")[0].body["properties"]
    assert vm["hardwareProfile"] == {"vmSize": "Standard_D2_v2"}
    disks = vm["storageProfile"]["dataDisks"]
    assert [(d["lun"], d["diskSizeGB"], d["caching"], d["createOption"], d["managedDisk"]["storageAccountType"],
             d["deleteOption"]) for d in disks] == [(lun, 128, "ReadOnly", "Empty", "Premium_LRS", "Delete")
                                                    for lun in range(3)]
    assert vm["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert vm["networkProfile"]["networkInterfaces"][0]["properties"] == {"primary": True, "deleteOption": "Delete"}
    linux = vm["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"] == [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": SSH_KEY}]
    assert sorted(fake_arm.names("Microsoft.Compute/disks")) == [
        "fs0123456789abcdef-disk0", "fs0123456789abcdef-disk1", "fs0123456789abcdef-disk2", "fs0123456789abcdef-osdisk"]


def test_azure_user_data_makes_raid0_mounts_and_exports_to_the_subnet(fake_arm: FakeArmVms, tmp_path: Path) -> None:
    """Debian's cloud-init validates what ARM received, byte for byte; the script parses as bash."""
    if shutil.which("cloud-init") is None:
        pytest.fail("`cloud-init` is not on PATH: install Debian's cloud-init package (apt-get install cloud-init)")
    Adapter(azure_adapter(fake_arm), fake_arm.settle, None).provisioned(make_spec())
    encoded = fake_arm.calls("PUT", "/virtualMachines/")[0].body["properties"]["osProfile"]["customData"]
    user_data = tmp_path / "user-data.yaml"
    user_data.write_text(base64.b64decode(encoded).decode())
    checked = subprocess.run(["cloud-init", "schema", "-c", str(user_data)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config" in checked.stdout
    config = yaml.safe_load(user_data.read_text())
    assert {"mdadm", "nfs-kernel-server"} <= set(config["packages"])
    assert config["runcmd"] == [[SETUP_SCRIPT]]
    script = next(f["content"] for f in config["write_files"] if f["path"] == SETUP_SCRIPT)
    (tmp_path / "setup.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "setup.sh")]).returncode == 0
    assert "DISK_COUNT=3" in script and "MOUNT_POINT=/mnt/data" in script
    assert "CLIENTS=10.1.0.0/24" in script  # the subnet's range, read from ARM
    assert "mdadm --create" in script and "--level=0" in script and "exportfs -ra" in script


def test_azure_ssh_only_from_the_allowed_addresses(fake_arm: FakeArmVms) -> None:
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    adapter.provisioned(make_spec(ssh_sources=("203.0.113.7", "198.51.100.0/24")))
    rule = fake_arm.get("Microsoft.Network/networkSecurityGroups", "fs0123456789abcdef-nsg").body[
        "properties"]["securityRules"][0]["properties"]
    assert rule["sourceAddressPrefixes"] == ["203.0.113.7", "198.51.100.0/24"] and "sourceAddressPrefix" not in rule


def test_azure_password_login_when_given(fake_arm: FakeArmVms) -> None:
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    assert adapter.provisioned(make_spec(admin_password="S3cret!pass", admin_ssh_public_key=None))[0].stage == "succeeded"
    vm = fake_arm.calls("PUT", "/virtualMachines/")[0].body["properties"]["osProfile"]
    assert vm["adminPassword"] == "S3cret!pass" and "linuxConfiguration" not in vm


def test_azure_failed_vm_fails_the_server_with_arms_words(fake_arm: FakeArmVms) -> None:
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    for _ in range(3):  # NSG, public IP, NIC
        assert adapter.servers.provision(make_spec()).stage == "creating"
        fake_arm.settle()
    assert adapter.servers.provision(make_spec()).stage == "creating"  # the VM is started
    fake_arm.fail_vm("fs0123456789abcdef", "Allocation failed. We do not have sufficient capacity for the requested "
                                           "VM size in this region.")
    fake_arm.settle()
    state = adapter.servers.provision(make_spec())
    assert state.stage == "failed"
    assert "Allocation failed" in state.details and "fs0123456789abcdef" in state.details
    adapter.deleted("fs0123456789abcdef")  # a failed server goes like any other
    assert not any(fake_arm.names(t) for t in (*NETWORK_TYPES, "Microsoft.Compute/virtualMachines",
                                                "Microsoft.Compute/disks"))


def test_azure_refusal_fails_the_server_a_conflict_is_retried(fake_arm: FakeArmVms) -> None:
    """ARM refusing what is asked fails the server with ARM's words; a conflict is only for now."""
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    fake_arm.refuse_next_put("Microsoft.Network/networkSecurityGroups", 409, "AnotherOperationInProgress",
                             "Another operation on this or dependent resource is in progress.")
    with pytest.raises(FileServerError, match="Another operation"):
        adapter.servers.provision(make_spec())
    for _ in range(3):
        adapter.servers.provision(make_spec())
        fake_arm.settle()
    fake_arm.refuse_next_put("Microsoft.Compute/virtualMachines", 400, "SkuNotAvailable",
                             "The requested size for resource is currently not available in location 'westeurope'.")
    state = adapter.servers.provision(make_spec())
    assert state.stage == "failed" and "currently not available" in state.details


def test_azure_without_any_subnet_fails_before_calling_arm(fake_arm: FakeArmVms) -> None:
    servers = AzureFileServers(fake_arm.subscription_id, RG, StaticToken(), base_url=fake_arm.base_url)  # type: ignore[arg-type]
    state = servers.provision(make_spec())
    assert state.stage == "failed" and "no subnet" in state.details
    assert not fake_arm.requests


def test_azure_delete_removes_vm_disks_nic_public_ip_and_nsg(fake_arm: FakeArmVms) -> None:
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    adapter.provisioned(make_spec())
    rounds = adapter.deleted("fs0123456789abcdef")
    assert rounds == 3  # the VM (taking its disks and NIC), then the public IP and NSG, then nothing is left
    for type_ in (*NETWORK_TYPES, "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks"):
        assert fake_arm.names(type_) == [], type_
    deleted = [r.path.rsplit("/providers/", 1)[1] for r in fake_arm.calls("DELETE")]
    assert deleted == ["Microsoft.Compute/virtualMachines/fs0123456789abcdef",
                       "Microsoft.Network/publicIPAddresses/fs0123456789abcdef-ip",
                       "Microsoft.Network/networkSecurityGroups/fs0123456789abcdef-nsg"]


def test_azure_delete_while_creating_leaves_nothing(fake_arm: FakeArmVms) -> None:
    adapter = Adapter(azure_adapter(fake_arm), fake_arm.settle, None)
    for _ in range(2):
        adapter.servers.provision(make_spec())
        fake_arm.settle()
    adapter.servers.provision(make_spec())  # the NIC is being made
    adapter.deleted("fs0123456789abcdef")
    assert not any(fake_arm.names(t) for t in NETWORK_TYPES)


def test_fake_refuses_bodies_the_sdk_models_do_not_allow(fake_arm: FakeArmVms) -> None:
    """The stand-in is strict the way ARM is: an unknown member or enum value is a 400 naming it."""
    import json
    import urllib.error
    import urllib.request

    fake_arm.add_subnet("net", "vnet", "nodes", "10.1.0.0/24")
    url = (f"{fake_arm.base_url}/subscriptions/{fake_arm.subscription_id}/resourceGroups/{RG}/providers/"
           "Microsoft.Network/publicIPAddresses/x?api-version=2024-05-01")
    for body, target in (({"location": "w", "properties": {"publicIpAllocationMethod": "Static"}},
                          "properties.publicIpAllocationMethod"),
                         ({"location": "w", "sku": {"name": "Premium"}}, "sku.name")):
        request = urllib.request.Request(url, json.dumps(body).encode(), method="PUT", headers={
            "Authorization": "Bearer t", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert json.load(refused.value)["error"]["target"] == target
