"""A stand-in for ARM's virtual machine, managed disk and network endpoints (file server VMs), for tests.

Plain HTTP on 127.0.0.1 from a thread of the test process. It serves what the file server adapter
calls: network security groups, public IPs, NICs and subnets (Microsoft.Network), virtual machines and
managed disks (Microsoft.Compute). Every PUT body is checked against the SDK's own model of the type
(tests/fakes/sdk_shapes.py: unknown members, wrong types, unknown enum values, missing required
members are a 400 as ARM answers), and against ARM's rules that matter here: what a resource names
must exist and be provisioned (ReferencedResourceNotProvisioned), a NIC serves one VM, a resource in
use cannot be deleted, disk LUNs are distinct and 0-63, custom data is base64 within 64 KiB.

Nothing finishes by itself: a PUT leaves its resource "Updating" (a VM "Creating") and a DELETE
leaves it "Deleting" until the test calls ``settle()`` — time passing in Azure — when operations end
(a VM marked with ``fail_vm`` ends "Failed" with an error status). Deleting a VM takes with it the
disks and NIC it marked ``deleteOption: Delete``. Every request is recorded.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import azure.mgmt.compute.models as compute_models
import azure.mgmt.network.models as network_models

try:
    from tests.fakes.arm_compute import ArmError, RecordedRequest
    from tests.fakes.loopback_http import LoopbackServer, read_json_request
    from tests.fakes.sdk_shapes import ShapeError, check
except ModuleNotFoundError:  # plain `pytest`: tests/ itself is on sys.path
    from fakes.arm_compute import ArmError, RecordedRequest  # type: ignore[no-redef]
    from fakes.loopback_http import LoopbackServer, read_json_request  # type: ignore[no-redef]
    from fakes.sdk_shapes import ShapeError, check  # type: ignore[no-redef]

_MAX_CUSTOM_DATA = 87380
_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                   r"(?P<type>Microsoft\.Network/networkSecurityGroups|Microsoft\.Network/publicIPAddresses|"
                   r"Microsoft\.Network/networkInterfaces|Microsoft\.Network/virtualNetworks/[^/]+/subnets|"
                   r"Microsoft\.Compute/virtualMachines|Microsoft\.Compute/disks)(?:/(?P<name>[^/]+))?$", re.IGNORECASE)
MODELS: dict[str, type] = {
    "microsoft.network/networksecuritygroups": network_models.NetworkSecurityGroup,
    "microsoft.network/publicipaddresses": network_models.PublicIPAddress,
    "microsoft.network/networkinterfaces": network_models.NetworkInterface,
    "microsoft.compute/virtualmachines": compute_models.VirtualMachine,
}


@dataclass
class Resource:
    type: str  # e.g. Microsoft.Network/networkInterfaces (subnets: Microsoft.Network/virtualNetworks/subnets)
    id: str
    name: str
    body: dict[str, Any]  # as PUT (write-only secrets removed), plus what ARM fills in
    state: str = "Updating"
    pending: str = ""  # "create" | "delete" while an operation runs
    fail_message: str = ""


class FakeArmVms:
    """The fake; use as a context manager, then point the SDK clients at ``base_url``."""

    def __init__(self, subscription_id: str = "00000000-0000-0000-0000-000000000000") -> None:
        self.subscription_id = subscription_id
        self.requests: list[RecordedRequest] = []
        self.resources: dict[str, Resource] = {}  # lower-cased id -> resource
        self._lock = threading.RLock()
        self.custom_data: dict[str, str] = {}  # VM name (lower case) -> its decoded custom data
        self._addresses = itertools.count(4)
        self._refusals: dict[str, ArmError] = {}
        self._http: LoopbackServer | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeArmVms:
        self._http = LoopbackServer(self._handle, "fake-arm-vms")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "not started"
        return self._http.base_url

    # ------------------------------------------------------------ test helpers

    def add_subnet(self, resource_group: str, vnet: str, name: str, prefix: str) -> str:
        """A subnet that exists (the deployment made it); returns its resource id."""
        rid = (f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}/providers/"
               f"Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}")
        with self._lock:
            self.resources[rid.lower()] = Resource("Microsoft.Network/virtualNetworks/subnets", rid, name,
                                                   {"properties": {"addressPrefix": prefix}}, "Succeeded")
        return rid

    def settle(self) -> None:
        """Every operation under way ends (time passes in Azure)."""
        with self._lock:
            for resource in list(self.resources.values()):
                if resource.pending == "create":
                    resource.pending = ""
                    resource.state = "Failed" if resource.fail_message else "Succeeded"
                    self._on_created(resource)
            for resource in [r for r in self.resources.values() if r.pending == "delete"]:
                self._drop(resource)

    def fail_vm(self, name: str, message: str) -> None:
        """The VM's provisioning will end Failed with this message (allocation failure, quota...)."""
        with self._lock:
            self._named("Microsoft.Compute/virtualMachines", name).fail_message = message

    def refuse_next_put(self, type_: str, status: int, code: str, message: str) -> None:
        """The next PUT of a resource of this type is answered with this ARM error."""
        with self._lock:
            self._refusals[type_.lower()] = ArmError(status, code, message)

    def names(self, type_: str) -> list[str]:
        """Names of the resources of a type that exist, sorted."""
        with self._lock:
            return sorted(r.name for r in self.resources.values() if r.type.lower() == type_.lower())

    def get(self, type_: str, name: str) -> Resource:
        with self._lock:
            return self._named(type_, name)

    def calls(self, method: str, contains: str = "") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and contains.lower() in r.path.lower()]

    # ------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path, query, raw, body = read_json_request(handler)
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, path, query, dict(handler.headers.items()), body))
        try:
            if not (handler.headers.get("Authorization") or "").startswith("Bearer "):
                raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            if not query.get("api-version"):
                raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
            if raw and not isinstance(body, dict):
                raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
            with self._lock:
                status, payload = self._route(handler.command, path, query, body)
        except ArmError as err:
            error: dict[str, Any] = {"code": err.code, "message": err.message}
            if err.target:
                error["target"] = err.target
            status, payload = err.status, {"error": error}
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        if payload is not None:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-ms-request-id", str(uuid.uuid4()))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        match = _PATH.match(path)
        if not match:
            raise ArmError(404, "InvalidResourceType", f"The resource type could not be found for {path}.")
        if match["sub"] != self.subscription_id:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{match['sub']}' could not be found.")
        type_ = re.sub(r"/virtualNetworks/[^/]+/", "/virtualNetworks/", match["type"], flags=re.IGNORECASE)
        name = match["name"]
        if name is None:
            if method == "GET" and type_.lower() == "microsoft.compute/disks":
                return 200, {"value": [self._view(r) for r in self.resources.values()
                                       if r.type == "Microsoft.Compute/disks"
                                       and f"/resourcegroups/{match['rg'].lower()}/" in r.id.lower()]}
            raise ArmError(405, "UnsupportedOperation", f"{method} {path} is not supported by this fake.")
        rid = path
        if method == "GET":
            resource = self.resources.get(rid.lower())
            if resource is None:
                raise ArmError(404, "ResourceNotFound", f"The Resource '{match['type']}/{name}' under resource group "
                                                        f"'{match['rg']}' was not found.")
            return 200, self._view(resource, instance_view=query.get("$expand") == "instanceView")
        if method == "PUT":
            return self._put(type_, rid, name, body)
        if method == "DELETE":
            return self._delete(rid)
        raise ArmError(405, "UnsupportedOperation", f"{method} {path} is not supported by this fake.")

    # ------------------------------------------------------------ resources

    def _named(self, type_: str, name: str) -> Resource:
        for resource in self.resources.values():
            if resource.type.lower() == type_.lower() and resource.name.lower() == name.lower():
                return resource
        raise KeyError(f"{type_}/{name}")

    def _view(self, resource: Resource, instance_view: bool = False) -> dict[str, Any]:
        body = json.loads(json.dumps(resource.body))
        body.update(id=resource.id, name=resource.name, type=resource.type)
        props = body.setdefault("properties", {})
        props["provisioningState"] = resource.state
        if instance_view and resource.type == "Microsoft.Compute/virtualMachines":
            status = {"code": f"ProvisioningState/{resource.state.lower()}", "level": "Info",
                      "displayStatus": f"Provisioning {resource.state.lower()}"}
            if resource.state == "Failed":
                status.update(level="Error", message=resource.fail_message)
            props["instanceView"] = {"statuses": [status]}
        return body

    def _ready(self, reference: str | None, what: str, target: str) -> Resource:
        resource = self.resources.get((reference or "").lower())
        if resource is None:
            raise ArmError(400, "InvalidResourceReference", f"Resource {reference} referenced by {what} was not found.",
                           target)
        if resource.state != "Succeeded":
            raise ArmError(429 if resource.state == "Updating" else 400, "ReferencedResourceNotProvisioned",
                           f"Cannot proceed with operation because resource {reference} used by {what} is not in "
                           f"Succeeded state. Resource is in {resource.state} state.", target)
        return resource

    def _put(self, type_: str, rid: str, name: str, body: Any) -> tuple[int, Any]:
        if (refusal := self._refusals.pop(type_.lower(), None)) is not None:
            raise refusal
        model = MODELS.get(type_.lower())
        if model is None:
            raise ArmError(405, "UnsupportedOperation", f"PUT of {type_} is not supported by this fake.")
        try:
            check(model, body)
        except ShapeError as err:
            raise ArmError(400, "InvalidRequestContent", err.message, err.path) from None
        if not body.get("location"):
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.", "location")
        existing = self.resources.get(rid.lower())
        if existing is not None and existing.pending == "delete":
            raise ArmError(409, "OperationNotAllowed", f"{name} is being deleted.")
        stored = json.loads(json.dumps(body))
        kind = type_.lower()
        if kind == "microsoft.network/networkinterfaces":
            self._check_nic(name, stored)
        if kind == "microsoft.compute/virtualmachines":
            self._check_vm(rid, name, stored)
        type_name = {k.lower(): k for k in ("Microsoft.Network/networkSecurityGroups", "Microsoft.Network/publicIPAddresses",
                                            "Microsoft.Network/networkInterfaces", "Microsoft.Compute/virtualMachines")}[kind]
        resource = Resource(type_name, rid, name, stored,
                            "Creating" if kind == "microsoft.compute/virtualmachines" else "Updating", "create")
        self.resources[rid.lower()] = resource
        if kind == "microsoft.compute/virtualmachines":
            self._make_disks(resource)
        return (200 if existing else 201), self._view(resource)

    def _check_nic(self, name: str, body: dict[str, Any]) -> None:
        props = body.get("properties") or {}
        configs = props.get("ipConfigurations") or []
        if not configs:
            raise ArmError(400, "InvalidRequestFormat", "A network interface needs at least one IP configuration.",
                           "properties.ipConfigurations")
        for index, config in enumerate(configs):
            target = f"properties.ipConfigurations[{index}]"
            if not config.get("name"):
                raise ArmError(400, "InvalidRequestFormat", "An IP configuration needs a name.", f"{target}.name")
            ip_props = config.get("properties") or {}
            subnet = self._ready((ip_props.get("subnet") or {}).get("id"), f"NIC {name}", f"{target}.properties.subnet.id")
            if public := (ip_props.get("publicIPAddress") or {}).get("id"):
                self._ready(public, f"NIC {name}", f"{target}.properties.publicIPAddress.id")
            network = ipaddress.ip_network(subnet.body["properties"]["addressPrefix"])
            ip_props["privateIPAddress"] = str(network.network_address + next(self._addresses))
        if nsg := (props.get("networkSecurityGroup") or {}).get("id"):
            self._ready(nsg, f"NIC {name}", "properties.networkSecurityGroup.id")

    def _check_vm(self, rid: str, name: str, body: dict[str, Any]) -> None:
        props = body.get("properties") or {}
        if not (props.get("hardwareProfile") or {}).get("vmSize"):
            raise ArmError(400, "InvalidParameter", "Required parameter 'vmSize' is missing.", "properties.hardwareProfile.vmSize")
        os_profile = props.get("osProfile") or {}
        for member in ("computerName", "adminUsername"):
            if not os_profile.get(member):
                raise ArmError(400, "InvalidParameter", f"Required parameter '{member}' is missing (null).",
                               f"properties.osProfile.{member}")
        keys = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys") or []
        if (os_profile.get("linuxConfiguration") or {}).get("disablePasswordAuthentication"):
            if not keys:
                raise ArmError(400, "InvalidParameter", "Password authentication is disabled but no SSH public key "
                               "was given.", "properties.osProfile.linuxConfiguration.ssh.publicKeys")
        elif not os_profile.get("adminPassword"):
            raise ArmError(400, "InvalidParameter", "Required parameter 'adminPassword' is missing (null).",
                           "properties.osProfile.adminPassword")
        custom_data = os_profile.pop("customData", None)  # write-only: never returned
        os_profile.pop("adminPassword", None)
        if custom_data is not None:
            try:
                base64.b64decode(custom_data, validate=True)
                valid = len(custom_data) <= _MAX_CUSTOM_DATA
            except (binascii.Error, TypeError, ValueError):
                valid = False
            if not valid:
                raise ArmError(400, "InvalidParameter", "Custom data in OSProfile must be in Base64 encoding and with a "
                               f"maximum length of {_MAX_CUSTOM_DATA} characters.", "properties.osProfile.customData")
            self.custom_data[name.lower()] = base64.b64decode(custom_data).decode()
        storage = props.get("storageProfile") or {}
        luns = [d.get("lun") for d in storage.get("dataDisks") or []]
        if len(set(luns)) != len(luns) or any(not 0 <= lun <= 63 for lun in luns):
            raise ArmError(400, "InvalidParameter", "Data disk LUNs must be distinct, from 0 to 63.",
                           "properties.storageProfile.dataDisks")
        nics = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        if not nics:
            raise ArmError(400, "InvalidParameter", "A VM needs a network interface.", "properties.networkProfile")
        for index, reference in enumerate(nics):
            nic = self._ready(reference.get("id"), f"VM {name}", f"properties.networkProfile.networkInterfaces[{index}].id")
            owner = (nic.body.get("properties") or {}).get("virtualMachine", {}).get("id")
            if owner and owner.lower() != rid.lower():
                raise ArmError(400, "NicInUse", f"Network interface {nic.id} is used by virtual machine {owner}.")
            nic.body.setdefault("properties", {})["virtualMachine"] = {"id": rid}

    def _make_disks(self, vm: Resource) -> None:
        storage = vm.body["properties"]["storageProfile"]
        prefix = vm.id.split("/providers/")[0] + "/providers/Microsoft.Compute/disks/"
        os_disk = storage.get("osDisk") or {}
        disks = [(os_disk.get("name") or f"{vm.name}_OsDisk", os_disk, 30)] + [
            (d.get("name") or f"{vm.name}_disk{d['lun']}", d, d.get("diskSizeGB") or 0) for d in storage.get("dataDisks") or []]
        for name, spec, size in disks:
            sku = ((spec.get("managedDisk") or {}).get("storageAccountType")) or "Standard_LRS"
            disk = Resource("Microsoft.Compute/disks", prefix + name, name,
                            {"location": vm.body["location"], "sku": {"name": sku}, "managedBy": vm.id,
                             "properties": {"diskSizeGB": size}}, "Updating", "create")
            self.resources[disk.id.lower()] = disk

    def _on_created(self, resource: Resource) -> None:
        if resource.type == "Microsoft.Network/publicIPAddresses" and resource.state == "Succeeded":
            resource.body.setdefault("properties", {})["ipAddress"] = f"20.50.0.{next(self._addresses)}"

    def _users(self, resource: Resource) -> list[Resource]:
        """The resources that name this one (and are not being deleted with it)."""
        if resource.type == "Microsoft.Compute/virtualMachines":
            return []  # its NIC names it back, but nothing uses a VM
        needle = json.dumps(resource.id).lower()
        return [r for r in self.resources.values() if r is not resource and r.pending != "delete"
                and needle in json.dumps(r.body).lower() and r.type != "Microsoft.Compute/disks"]

    def _delete(self, rid: str) -> tuple[int, Any]:
        resource = self.resources.get(rid.lower())
        if resource is None:
            return 204, None
        users = [u for u in self._users(resource)
                 if not (resource.type == "Microsoft.Network/networkInterfaces"
                         and u.type == "Microsoft.Compute/virtualMachines" and u.pending == "delete")]
        if resource.type == "Microsoft.Compute/disks" and resource.body.get("managedBy") in self._ids():
            users.append(self.resources[resource.body["managedBy"].lower()])
        if users:
            codes = {"Microsoft.Network/networkSecurityGroups": "InUseNetworkSecurityGroupCannotBeDeleted",
                     "Microsoft.Network/publicIPAddresses": "PublicIPAddressCannotBeDeleted",
                     "Microsoft.Network/networkInterfaces": "NicInUse", "Microsoft.Compute/disks": "OperationNotAllowed"}
            raise ArmError(400, codes.get(resource.type, "InUse"),
                           f"{resource.type} {resource.id} is in use by {users[0].id} and cannot be deleted.")
        resource.pending, resource.state = "delete", "Deleting"
        if resource.type == "Microsoft.Compute/virtualMachines":
            props = resource.body["properties"]
            storage = props.get("storageProfile") or {}
            for disk in [storage.get("osDisk") or {}] + list(storage.get("dataDisks") or []):
                if disk.get("deleteOption") == "Delete" and disk.get("name"):
                    self._mark_deleting(resource.id.split("/providers/")[0] + "/providers/Microsoft.Compute/disks/"
                                        + disk["name"])
            for nic in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
                if (nic.get("properties") or {}).get("deleteOption") == "Delete":
                    self._mark_deleting(nic["id"])
        return 202, None

    def _mark_deleting(self, rid: str) -> None:
        resource = self.resources.get(rid.lower())
        if resource is not None:
            resource.pending, resource.state = "delete", "Deleting"

    def _ids(self) -> set[str]:
        return {r.id for r in self.resources.values()}

    def _drop(self, resource: Resource) -> None:
        self.resources.pop(resource.id.lower(), None)
        if resource.type == "Microsoft.Compute/virtualMachines":
            for other in self.resources.values():  # its NIC is free again; its kept disks unattached
                props = other.body.get("properties") or {}
                if (props.get("virtualMachine") or {}).get("id", "").lower() == resource.id.lower():
                    props.pop("virtualMachine")
                if (other.body.get("managedBy") or "").lower() == resource.id.lower():
                    other.body.pop("managedBy")
