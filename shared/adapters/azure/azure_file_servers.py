"""File servers on Azure: one NFS server VM per file server (azure-mgmt-network, azure-mgmt-compute).

A file server ``<id>`` is made of, in the resource group of the deployment:

- ``<id>-nsg``: a network security group letting SSH in from ``sshConfiguration.publicIPsToAllow``
  (from anywhere when it names none); Azure's default rules do the rest: traffic inside the virtual
  network (NFS included) is allowed, anything else from outside is not;
- ``<id>-ip``: a Standard, static public IP (Batch AI's ``mountSettings.fileServerPublicIP``);
- ``<id>-nic``: a NIC in the nodes' subnet with both;
- ``<id>``: the VM (Canonical's Ubuntu 24.04), its OS disk ``<id>-osdisk`` and ``diskCount`` empty
  managed data disks ``<id>-disk<lun>`` of ``storageAccountType`` and ``cachingType``; its custom data
  (shared/file_server_boot.py) makes them one RAID 0 array, mounts it at the mount point and exports
  it over NFS to the subnet's address range.

Nothing waits for ARM: ``provision`` walks the parts in that order, starts the first one missing
(``begin_*`` with ``polling=False``: the request is accepted, nobody polls) and reports ``creating``
until every part is ``Succeeded``; a part whose provisioning ``Failed`` fails the file server with
ARM's words. A part cannot be made before the ones it names are ready (ARM refuses with
ReferencedResourceNotProvisioned), hence one part a round. ``delete`` goes the other way: the VM (its
disks and NIC are marked to go with it), then what is left of disks, NIC, public IP and NSG.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    DataDisk,
    HardwareProfile,
    ImageReference,
    LinuxConfiguration,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkInterfaceReferenceProperties,
    NetworkProfile,
    OSDisk,
    OSProfile,
    SshConfiguration,
    SshPublicKey,
    StorageProfile,
    VirtualMachine,
    VirtualMachineProperties,
)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    NetworkInterfaceIPConfigurationPropertiesFormat,
    NetworkInterfacePropertiesFormat,
    NetworkSecurityGroup,
    NetworkSecurityGroupPropertiesFormat,
    PublicIPAddress,
    PublicIPAddressPropertiesFormat,
    PublicIPAddressSku,
    SecurityRule,
    SecurityRulePropertiesFormat,
    Subnet,
)
from azure.mgmt.network.models import SubResource as NetworkSubResource

from shared import file_server_boot
from shared.adapters.azure.vmss_pool import azure_vm_size
from shared.ports.file_servers import FileServerError, FileServers, FileServerSpec, FileServerState

# A current Ubuntu LTS whose archive has mdadm and the kernel NFS server.
IMAGE = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
CACHING = {"none": "None", "readonly": "ReadOnly", "readwrite": "ReadWrite"}
_SUBNET = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network"
                     r"/virtualNetworks/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)$", re.IGNORECASE)
_SERVER_ID = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def part_names(server_id: str) -> dict[str, str]:
    """The names of a file server's Azure resources."""
    return {"nsg": f"{server_id}-nsg", "ip": f"{server_id}-ip", "nic": f"{server_id}-nic", "vm": server_id,
            "os_disk": f"{server_id}-osdisk", "disk_prefix": f"{server_id}-disk"}


class AzureFileServers(FileServers):
    """File server VMs in one resource group; every call starts at most one ARM operation and returns."""

    needs_subnet = True

    def __init__(self, subscription_id: str, resource_group: str, credential: TokenCredential, *,
                 base_url: str | None = None, default_subnet_id: str | None = None,
                 client_options: Mapping[str, Any] | None = None) -> None:
        """``base_url`` may be plain http only for a local stand-in of ARM (tests)."""
        self._subscription_id = subscription_id
        self._rg = resource_group
        self._default_subnet_id = default_subnet_id or None
        options: dict[str, Any] = dict(client_options or {})
        if base_url is not None:
            options["base_url"] = base_url
        self._compute = ComputeManagementClient(credential, subscription_id, **options)
        self._network = NetworkManagementClient(credential, subscription_id, **options)
        # polling=False: a begin_* call returns once ARM accepted the request; later rounds observe it.
        self._call: dict[str, Any] = {}
        if base_url is not None and base_url.lower().startswith("http://"):
            self._call["enforce_https"] = False

    def default_subnet_id(self) -> str | None:
        return self._default_subnet_id

    def close(self) -> None:
        self._network.close()
        self._compute.close()

    # ---------------------------------------------------------------- provision

    def provision(self, spec: FileServerSpec) -> FileServerState:
        subnet_id = spec.subnet_id or self._default_subnet_id
        if not subnet_id:
            return FileServerState(stage="failed", details="no subnet: the request names none and the deployment "
                                                            "has no default subnet (BATCHAI_DEFAULT_SUBNET_ID)")
        names = part_names(spec.server_id)
        try:
            nsg = self._part(lambda: self._network.network_security_groups.get(self._rg, names["nsg"], **self._call),
                             lambda: self._network.network_security_groups.begin_create_or_update(
                                 self._rg, names["nsg"], self._nsg(spec), polling=False, **self._call))
            if isinstance(nsg, FileServerState):
                return nsg
            ip = self._part(lambda: self._network.public_ip_addresses.get(self._rg, names["ip"], **self._call),
                            lambda: self._network.public_ip_addresses.begin_create_or_update(
                                self._rg, names["ip"], self._public_ip(spec), polling=False, **self._call))
            if isinstance(ip, FileServerState):
                return ip
            nic = self._part(lambda: self._network.network_interfaces.get(self._rg, names["nic"], **self._call),
                             lambda: self._network.network_interfaces.begin_create_or_update(
                                 self._rg, names["nic"], self._nic(spec, subnet_id, nsg.id, ip.id), polling=False,
                                 **self._call))
            if isinstance(nic, FileServerState):
                return nic
            vm = self._part(lambda: self._compute.virtual_machines.get(self._rg, names["vm"], expand="instanceView",
                                                                       **self._call),
                            lambda: self._compute.virtual_machines.begin_create_or_update(
                                self._rg, names["vm"], self._vm(spec, nic.id, self._clients(subnet_id)), polling=False,
                                **self._call))
            if isinstance(vm, FileServerState):
                return vm
        except _Refused as exc:
            return FileServerState(stage="failed", details=str(exc))
        except HttpResponseError as exc:
            if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code not in (408, 409, 429):
                return FileServerState(stage="failed", details=_message(exc))  # ARM refused what was asked
            raise FileServerError(_message(exc)) from exc
        except AzureError as exc:  # no answer (network, credentials): the next round tries again
            raise FileServerError(_message(exc)) from exc
        config = (nic.properties.ip_configurations or [None])[0] if nic.properties else None
        internal = (config.properties.private_ip_address if config is not None and config.properties else None) or ""
        public = (ip.properties.ip_address if ip.properties else None) or ""
        return FileServerState(stage="succeeded", internal_ip=internal, public_ip=public, mount_point=spec.mount_point)

    def _part(self, get: Callable[[], Any], create: Callable[[], Any]) -> Any:
        """The part if it is ready; else where the file server stands (its create started now if missing)."""
        try:
            part = get()
        except ResourceNotFoundError:
            create()
            return FileServerState(stage="creating")
        state = ((part.properties.provisioning_state if part.properties else None) or "").lower()
        if state == "succeeded":
            return part
        if state == "failed":
            return FileServerState(stage="failed", details=_failure(part))
        return FileServerState(stage="creating", details=f"{part.name}: {state or 'creating'}")

    def _clients(self, subnet_id: str) -> str:
        """The subnet's address range: who may mount the export."""
        match = _SUBNET.match(subnet_id)
        if match is None:
            raise _Refused(f"{subnet_id!r} is not the resource id of a subnet")
        if match["sub"].lower() != self._subscription_id.lower():
            raise _Refused(f"the subnet {subnet_id} is in another subscription than the deployment's")
        subnet: Subnet = self._network.subnets.get(match["rg"], match["vnet"], match["subnet"], **self._call)
        props = subnet.properties
        prefix = (props.address_prefix or next(iter(props.address_prefixes or []), None)) if props else None
        if not prefix:
            raise _Refused(f"the subnet {subnet_id} has no address prefix")
        return prefix

    def _nsg(self, spec: FileServerSpec) -> NetworkSecurityGroup:
        sources: dict[str, Any] = ({"source_address_prefixes": list(spec.ssh_sources)} if spec.ssh_sources
                                   else {"source_address_prefix": "*"})
        ssh = SecurityRule(name="ssh", properties=SecurityRulePropertiesFormat(
            protocol="Tcp", source_port_range="*", destination_port_range="22", destination_address_prefix="*",
            access="Allow", priority=1000, direction="Inbound", **sources))
        return NetworkSecurityGroup(location=spec.location, tags=dict(spec.tags),
                                    properties=NetworkSecurityGroupPropertiesFormat(security_rules=[ssh]))

    def _public_ip(self, spec: FileServerSpec) -> PublicIPAddress:
        return PublicIPAddress(location=spec.location, tags=dict(spec.tags), sku=PublicIPAddressSku(name="Standard"),
                               properties=PublicIPAddressPropertiesFormat(public_ip_allocation_method="Static",
                                                                          public_ip_address_version="IPv4"))

    def _nic(self, spec: FileServerSpec, subnet_id: str, nsg_id: str, ip_id: str) -> NetworkInterface:
        config = NetworkInterfaceIPConfiguration(name="ipconfig", properties=NetworkInterfaceIPConfigurationPropertiesFormat(
            primary=True, private_ip_allocation_method="Dynamic", subnet=Subnet(id=subnet_id),
            public_ip_address=PublicIPAddress(id=ip_id)))
        return NetworkInterface(location=spec.location, tags=dict(spec.tags), properties=NetworkInterfacePropertiesFormat(
            ip_configurations=[config], network_security_group=NetworkSecurityGroup(id=nsg_id)))

    def _vm(self, spec: FileServerSpec, nic_id: str, clients: str) -> VirtualMachine:
        names = part_names(spec.server_id)
        if not spec.admin_password and not spec.admin_ssh_public_key:
            raise _Refused("give the admin user a password or an SSH public key")
        linux = None
        if spec.admin_ssh_public_key:
            linux = LinuxConfiguration(
                disable_password_authentication=not spec.admin_password,
                ssh=SshConfiguration(public_keys=[SshPublicKey(
                    path=f"/home/{spec.admin_user_name}/.ssh/authorized_keys", key_data=spec.admin_ssh_public_key)]))
        custom_data = file_server_boot.user_data(spec.disk_count, spec.mount_point, clients)
        disks = [DataDisk(lun=lun, name=f"{names['disk_prefix']}{lun}", create_option="Empty",
                          disk_size_gb=spec.disk_size_gb, caching=CACHING[spec.caching_type], delete_option="Delete",
                          managed_disk=ManagedDiskParameters(storage_account_type=spec.storage_account_type))
                 for lun in range(spec.disk_count)]
        return VirtualMachine(location=spec.location, tags=dict(spec.tags), properties=VirtualMachineProperties(
            hardware_profile=HardwareProfile(vm_size=azure_vm_size(spec.vm_size)),
            storage_profile=StorageProfile(
                image_reference=ImageReference(**IMAGE),
                os_disk=OSDisk(name=names["os_disk"], create_option="FromImage", delete_option="Delete"),
                data_disks=disks),
            os_profile=OSProfile(computer_name=spec.server_id, admin_username=spec.admin_user_name,
                                 admin_password=spec.admin_password or None,
                                 custom_data=base64.b64encode(custom_data.encode()).decode(),
                                 linux_configuration=linux),
            network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(
                id=nic_id, properties=NetworkInterfaceReferenceProperties(primary=True, delete_option="Delete"))]),
        ))

    # ---------------------------------------------------------------- delete

    def delete(self, server_id: str) -> bool:
        if not _SERVER_ID.match(server_id):
            raise ValueError(f"invalid file server id {server_id!r}")
        names = part_names(server_id)
        try:
            if self._remove(lambda: self._compute.virtual_machines.get(self._rg, names["vm"], **self._call),
                            lambda: self._compute.virtual_machines.begin_delete(self._rg, names["vm"], polling=False,
                                                                                **self._call)):
                return False  # its disks and NIC go with it; what is left goes once it is gone
            gone = True
            for disk in self._compute.disks.list_by_resource_group(self._rg, **self._call):
                if disk.name and (disk.name == names["os_disk"] or disk.name.startswith(names["disk_prefix"])):
                    gone = False
                    if ((disk.properties.provisioning_state if disk.properties else "") or "").lower() != "deleting":
                        self._compute.disks.begin_delete(self._rg, disk.name, polling=False, **self._call)
            if self._remove(lambda: self._network.network_interfaces.get(self._rg, names["nic"], **self._call),
                            lambda: self._network.network_interfaces.begin_delete(self._rg, names["nic"], polling=False,
                                                                                  **self._call)):
                return False  # the public IP and the NSG are in use until the NIC is gone
            for kind in ("ip", "nsg"):
                operations = (self._network.public_ip_addresses if kind == "ip"
                              else self._network.network_security_groups)
                gone = not self._remove(lambda: operations.get(self._rg, names[kind], **self._call),
                                        lambda: operations.begin_delete(self._rg, names[kind], polling=False,
                                                                        **self._call)) and gone
            return gone
        except AzureError as exc:
            raise FileServerError(_message(exc)) from exc

    @staticmethod
    def _remove(get: Callable[[], Any], delete: Callable[[], Any]) -> bool:
        """Start deleting the part unless it is gone or going; True while it still exists."""
        try:
            part = get()
        except ResourceNotFoundError:
            return False
        if ((part.properties.provisioning_state if part.properties else "") or "").lower() != "deleting":
            try:
                delete()
            except ResourceNotFoundError:
                return False
        return True


class _Refused(Exception):
    """What was asked cannot be made (no retry helps): the file server fails with this message."""


def _message(exc: AzureError) -> str:
    return str(getattr(exc, "message", None) or exc)[:1000]


def _failure(part: Any) -> str:
    """Why a part failed: its instance view's error statuses when it has them (a VM), else its state."""
    parts = [f"{part.name}: provisioning state Failed"]
    view = getattr(part.properties, "instance_view", None)
    for status in (getattr(view, "statuses", None) or []):
        text = status.message or status.display_status
        if text and (status.level or "").lower() == "error":
            parts.append(f"{status.code}: {text}")
    return "; ".join(parts)
