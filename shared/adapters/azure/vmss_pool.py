"""VM pool on Azure: one virtual machine scale set per pool (azure-mgmt-compute).

Every VM gets, through cloud-init custom data, Python, this project's package (for the node agent),
the agent's bootstrap.json and a systemd unit that runs ``python3 -m node_bootstrap``. All VMs of a
scale set share one custom data, so bootstrap.json is written with ``node_id`` and ``address`` null
and a boot script fills them in from the instance metadata service (IMDS) before the agent starts:
node_id = the scale set instance id (the suffix of IMDS compute.name "<scaleset>_<instance id>"),
the same id ``list_nodes`` reports.

Low priority becomes Spot with eviction policy Delete (an evicted VM disappears, and the control
plane sees its node vanish) and max price -1 (pay up to the on-demand price, never evicted for price).

Private addresses are read from the Network resource provider's listing of the scale set's NICs
(azure-mgmt-network); when that call fails, nodes are listed with address "".

Azure's limits shape the calls:
- No ARM operation is waited for under a cluster's lease or inside a function invocation: creating,
  resizing and deleting start the operation (``begin_*``) and return. Its outcome is observed on later
  rounds through the scale set's own provisioning state, which survives any process: a scale set still
  ``Creating`` is not resized yet; a ``Failed`` one is reported as a PoolError (shown on its cluster).
- Listings (instances with their instance views, and NICs) are read at most once per ``read_interval``
  seconds per scale set; rounds in between reuse the last listing, less the nodes removed since.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    ApiEntityReference,
    BillingProfile,
    ImageReference,
    LinuxConfiguration,
    Sku,
    SshConfiguration,
    SshPublicKey,
    UpgradePolicy,
    VirtualMachineScaleSet,
    VirtualMachineScaleSetIPConfiguration,
    VirtualMachineScaleSetIPConfigurationProperties,
    VirtualMachineScaleSetNetworkConfiguration,
    VirtualMachineScaleSetNetworkConfigurationProperties,
    VirtualMachineScaleSetNetworkProfile,
    VirtualMachineScaleSetOSProfile,
    VirtualMachineScaleSetProperties,
    VirtualMachineScaleSetStorageProfile,
    VirtualMachineScaleSetUpdate,
    VirtualMachineScaleSetVM,
    VirtualMachineScaleSetVMInstanceRequiredIDs,
    VirtualMachineScaleSetVMProfile,
)
from azure.mgmt.network import NetworkManagementClient

from shared.ports.vm_pool import NodeState, PoolError, PoolNode, PoolNotFound, PoolSpec, VmPool

_POOL_ID = re.compile(r"^[a-z0-9-]{1,60}$")
# Scale set provisioning states during which a resize waits for a later round.
_BUSY = frozenset({"creating", "deleting"})
NODE_DIR = "/var/lib/batchai/node"
AGENT_VENV = "/opt/batchai/venv"
SERVICE_NAME = "batchai-node.service"
# Batch AI's default image (Ubuntu 16.04) is long retired; this one runs on every Batch AI size.
DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts",
                 "version": "latest"}

_STATES: dict[str, NodeState] = {
    "creating": "creating",
    "updating": "creating",
    "migrating": "creating",
    "succeeded": "running",
    "deleting": "deleting",
    "failed": "failed",
    "canceled": "failed",
}

# Runs once per boot before the agent: fills node_id and address from IMDS (all VMs share custom data).
_IDENTIFY_SCRIPT = """\
import json, os, sys, time, urllib.request

path = sys.argv[1]
url = "http://169.254.169.254/metadata/instance?api-version=2021-02-01"
for attempt in range(30):
    try:
        request = urllib.request.Request(url, headers={"Metadata": "true"})
        meta = json.load(urllib.request.urlopen(request, timeout=5))
        break
    except OSError:
        time.sleep(2)
else:
    sys.exit("instance metadata service unreachable")
with open(path) as f:
    boot = json.load(f)
boot["node_id"] = meta["compute"]["name"].rsplit("_", 1)[-1]
boot["address"] = meta["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"]
tmp = path + ".tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(boot, f, indent=2)
os.replace(tmp, path)
"""


def azure_vm_size(name: str) -> str:
    """Azure's casing of a size name: STANDARD_NC6 -> Standard_NC6, standard_nc6s_v3 -> Standard_NC6s_v3.

    Batch AI accepted sizes in any case; Azure compares case-insensitively but shows its own casing.
    """
    parts = name.split("_")
    out = ["Standard" if parts[0].lower() == "standard" else parts[0]]
    for part in parts[1:]:
        match = re.fullmatch(r"([A-Za-z]+)(\d+)(.*)", part)
        if re.fullmatch(r"[vV]\d+", part):
            out.append(part.lower())
        elif match and match.group(3) and not match.group(3).isdigit():
            out.append(match.group(1).upper() + match.group(2) + match.group(3).lower())
        else:
            out.append(part.upper())
    return "_".join(out)


def cloud_init(bootstrap: Mapping[str, Any], agent_package: str) -> str:
    """The cloud-config that installs the agent and starts it as a systemd service.

    Written as JSON after the "#cloud-config" line: JSON is YAML, and needs no YAML library here.
    """
    service = "\n".join([
        "[Unit]",
        "Description=Batch AI node agent",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        f"ExecStartPre={AGENT_VENV}/bin/python3 /var/lib/batchai/identify.py {NODE_DIR}/bootstrap.json",
        f"ExecStart={AGENT_VENV}/bin/python3 -m node_bootstrap --node-dir {NODE_DIR}",
        f"WorkingDirectory={NODE_DIR}",
        "Restart=always",
        "RestartSec=5",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
    config = {
        "package_update": True,
        # The agent's interpreter, the mount helpers (Azure Files over SMB, file servers over NFS) and
        # Open MPI for the MPI toolkits. blobfuse2 comes with the VM image (as on Batch AI's images).
        "packages": ["python3", "python3-venv", "python3-pip", "cifs-utils", "nfs-common", "openmpi-bin"],
        "write_files": [
            {"path": f"{NODE_DIR}/bootstrap.json", "permissions": "0600", "owner": "root:root",
             "content": json.dumps(dict(bootstrap), indent=2)},
            {"path": "/var/lib/batchai/identify.py", "permissions": "0755", "content": _IDENTIFY_SCRIPT},
            {"path": f"/etc/systemd/system/{SERVICE_NAME}", "permissions": "0644", "content": service},
        ],
        "runcmd": [
            ["python3", "-m", "venv", AGENT_VENV],
            [f"{AGENT_VENV}/bin/pip", "install", "--upgrade", agent_package],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", SERVICE_NAME],
        ],
    }
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


F = TypeVar("F", bound=Callable[..., Any])


def _arm_errors(method: F) -> F:
    """ARM's refusals and time-outs reach the core as the port's PoolError, never as SDK types."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except PoolError:
            raise
        except AzureError as exc:  # ARM's answers, and no answer at all (network, credentials)
            raise PoolError(f"{method.__name__}: {exc.message or exc}") from exc
        except TimeoutError as exc:
            raise PoolError(f"{method.__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class VmssPool(VmPool):
    """One scale set per pool in one resource group; starts ARM operations and never waits for them."""

    def __init__(self, subscription_id: str, resource_group: str, credential: TokenCredential, *,
                 base_url: str | None = None, agent_package: str = "batchai-rebuilt",
                 default_subnet_id: str | None = None, read_interval: float = 0.0,
                 polling_interval: float = 10.0, client_options: Mapping[str, Any] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """``base_url`` may be plain http only for a local stand-in of ARM (tests): bearer tokens are
        then sent unencrypted, which azure-core refuses unless told (``enforce_https=False``).

        ``agent_package`` is what the VMs ``pip install`` (a name, a wheel URL, a git+https URL).
        ``default_subnet_id`` is used for pools whose spec names no subnet (Azure needs one).
        ``read_interval``: a scale set's instances and NICs are listed at most once per this many seconds.
        """
        self._subscription_id = subscription_id
        self._resource_group = resource_group
        self._agent_package = agent_package
        self._default_subnet_id = default_subnet_id
        self._read_interval = read_interval
        self._monotonic = monotonic
        self._listings: dict[str, tuple[float, list[PoolNode]]] = {}
        self._listings_lock = threading.Lock()
        options: dict[str, Any] = {"polling_interval": polling_interval, **(client_options or {})}
        if base_url is not None:
            options["base_url"] = base_url
        self._client = ComputeManagementClient(credential, subscription_id, **options)
        self._network = NetworkManagementClient(credential, subscription_id, **options)
        # Per-call options; forwarded by the SDK to the pipeline, and to LRO polling requests too.
        self._call: dict[str, Any] = {}
        if base_url is not None and base_url.lower().startswith("http://"):
            self._call["enforce_https"] = False
        self._scale_sets = self._client.virtual_machine_scale_sets
        self._vms = self._client.virtual_machine_scale_set_vms

    # ---------------------------------------------------------------- the port

    @_arm_errors
    def create_pool(self, spec: PoolSpec) -> None:
        """Start creating the scale set (ARM answers at once; it is ready some minutes later)."""
        _check_pool_id(spec.pool_id)
        scale_set = self._scale_set(spec)  # refuses a bad spec before any ARM call
        try:
            self._scale_sets.get(self._resource_group, spec.pool_id, **self._call)
            return  # exists: left as it is
        except ResourceNotFoundError:
            pass
        self._scale_sets.begin_create_or_update(self._resource_group, spec.pool_id, scale_set, **self._call)

    @_arm_errors
    def delete_pool(self, pool_id: str) -> None:
        _check_pool_id(pool_id)
        self._forget(pool_id)
        try:
            self._scale_sets.begin_delete(self._resource_group, pool_id, **self._call)
        except ResourceNotFoundError:
            return

    @_arm_errors
    def resize(self, pool_id: str, capacity: int) -> None:
        _check_pool_id(pool_id)
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        try:
            current = self._scale_sets.get(self._resource_group, pool_id, **self._call)
        except ResourceNotFoundError:
            raise PoolNotFound(pool_id) from None
        state = ((current.properties.provisioning_state if current.properties else None) or "").lower()
        if state == "failed":
            raise PoolError(f"scale set {pool_id} is in provisioning state Failed")
        if state in _BUSY:
            return  # its create (or delete) is still under way: a later round resizes it
        sku = current.sku
        if sku is not None and sku.capacity == capacity:
            return
        update = VirtualMachineScaleSetUpdate(
            sku=Sku(name=sku.name if sku else None, tier=sku.tier if sku else None, capacity=capacity))
        try:
            # Accepted is enough: new instances show as creating, and the caller holds a lease.
            self._scale_sets.begin_update(self._resource_group, pool_id, update, **self._call)
        except ResourceNotFoundError:
            raise PoolNotFound(pool_id) from None

    @_arm_errors
    def remove_nodes(self, pool_id: str, node_ids: Sequence[str]) -> None:
        """Delete these instances; unknown ids (which ARM refuses) and a missing pool are ignored."""
        _check_pool_id(pool_id)
        try:
            present = {n.node_id for n in self._nodes(pool_id) if n.state != "deleting"}
        except PoolNotFound:
            return
        targets = sorted({n for n in node_ids if n in present}, key=_instance_order)
        if not targets:
            return
        ids = VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=targets)
        try:
            self._scale_sets.begin_delete_instances(self._resource_group, pool_id, ids, **self._call)
        except ResourceNotFoundError:
            return
        self._mark_deleting(pool_id, set(targets))

    @_arm_errors
    def list_nodes(self, pool_id: str) -> list[PoolNode]:
        _check_pool_id(pool_id)
        return list(self._nodes(pool_id))

    def close(self) -> None:
        self._network.close()
        self._client.close()

    # ---------------------------------------------------------------- internals

    def _nodes(self, pool_id: str) -> list[PoolNode]:
        """The scale set's instances, from the last listing if it is younger than the read interval."""
        now = self._monotonic()
        with self._listings_lock:
            cached = self._listings.get(pool_id)
        if cached is not None and now - cached[0] < self._read_interval:
            return cached[1]
        vms = self._list_vms(pool_id, expand="instanceView")
        addresses = self._private_addresses(pool_id)
        nodes = []
        for vm in vms:
            instance_id = vm.instance_id or ""
            state = _state(vm)
            details = _failure_details(vm) if state == "failed" else ""
            nodes.append(PoolNode(instance_id, addresses.get(instance_id, ""), state, details))
        nodes.sort(key=lambda n: _instance_order(n.node_id))
        with self._listings_lock:
            self._listings[pool_id] = (now, nodes)
        return nodes

    def _mark_deleting(self, pool_id: str, node_ids: set[str]) -> None:
        """Instances just asked to go show as deleting until the next listing."""
        with self._listings_lock:
            cached = self._listings.get(pool_id)
            if cached is not None:
                self._listings[pool_id] = (cached[0], [
                    PoolNode(n.node_id, n.address, "deleting", n.details) if n.node_id in node_ids else n
                    for n in cached[1]])

    def _forget(self, pool_id: str) -> None:
        with self._listings_lock:
            self._listings.pop(pool_id, None)

    def _list_vms(self, pool_id: str, expand: str | None = None) -> list[VirtualMachineScaleSetVM]:
        try:
            return list(self._vms.list(self._resource_group, pool_id, expand=expand, **self._call))
        except ResourceNotFoundError:
            self._forget(pool_id)
            raise PoolNotFound(pool_id) from None

    def _private_addresses(self, pool_id: str) -> dict[str, str]:
        """Instance id -> primary private IP, from the Network RP's NIC listing; {} if unavailable."""
        addresses: dict[str, str] = {}
        try:
            nics = list(self._network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
                self._resource_group, pool_id, **self._call))
        except AzureError:
            return addresses
        for nic in nics:
            vm_id = nic.virtual_machine.id if nic.virtual_machine is not None else ""
            configs = nic.ip_configurations or []
            primary = next((c for c in configs if c.primary), configs[0] if configs else None)
            ip = primary.private_ip_address if primary is not None else None
            instance_id = (vm_id or "").rstrip("/").rsplit("/", 1)[-1]
            if ip and instance_id and (nic.primary is not False or instance_id not in addresses):
                addresses[instance_id] = ip
        return addresses

    def _scale_set(self, spec: PoolSpec) -> VirtualMachineScaleSet:
        subnet_id = spec.subnet_id or self._default_subnet_id
        if not subnet_id:
            raise ValueError(f"pool {spec.pool_id}: a scale set needs a subnet (spec.subnet_id or default_subnet_id)")
        if not spec.admin_password and not spec.admin_ssh_public_key:
            raise ValueError(f"pool {spec.pool_id}: give an admin password or an SSH public key")
        spot = spec.vm_priority == "lowpriority"
        profile = VirtualMachineScaleSetVMProfile(
            os_profile=self._os_profile(spec),
            storage_profile=VirtualMachineScaleSetStorageProfile(image_reference=_image(spec.image_reference)),
            network_profile=VirtualMachineScaleSetNetworkProfile(network_interface_configurations=[
                VirtualMachineScaleSetNetworkConfiguration(
                    name="nic",
                    properties=VirtualMachineScaleSetNetworkConfigurationProperties(
                        primary=True,
                        ip_configurations=[VirtualMachineScaleSetIPConfiguration(
                            name="ipconfig",
                            properties=VirtualMachineScaleSetIPConfigurationProperties(
                                primary=True, subnet=ApiEntityReference(id=subnet_id)),
                        )],
                    ),
                ),
            ]),
            priority="Spot" if spot else "Regular",
            eviction_policy="Delete" if spot else None,
            billing_profile=BillingProfile(max_price=-1) if spot else None,
        )
        return VirtualMachineScaleSet(
            location=spec.location,
            tags=dict(spec.tags),
            sku=Sku(name=azure_vm_size(spec.vm_size), tier="Standard", capacity=0),
            properties=VirtualMachineScaleSetProperties(
                upgrade_policy=UpgradePolicy(mode="Manual"),
                overprovision=False,  # extra VMs would register as nodes before ARM deletes them
                virtual_machine_profile=profile,
            ),
        )

    def _os_profile(self, spec: PoolSpec) -> VirtualMachineScaleSetOSProfile:
        bootstrap = spec.bootstrap
        document = {
            "endpoint": bootstrap.endpoint if bootstrap else None,
            "endpoint_file": None,
            "cluster_id": bootstrap.cluster_id if bootstrap else None,
            "token": bootstrap.token if bootstrap else "",
            "node_id": None,  # filled in on the VM from IMDS (see identify.py)
            "address": None,
            "pool_id": spec.pool_id,
            "vm_size": spec.vm_size,
            # The exporter choice; a VM's file exporter writes under its node folder, not the control plane's.
            "telemetry": {k: v for k, v in (bootstrap.telemetry if bootstrap else {}).items() if k != "directory"},
        }
        custom_data = base64.b64encode(cloud_init(document, self._agent_package).encode()).decode()
        linux = None
        if spec.admin_ssh_public_key:
            linux = LinuxConfiguration(
                disable_password_authentication=not spec.admin_password,
                ssh=SshConfiguration(public_keys=[SshPublicKey(
                    path=f"/home/{spec.admin_user_name}/.ssh/authorized_keys", key_data=spec.admin_ssh_public_key)]),
            )
        return VirtualMachineScaleSetOSProfile(
            computer_name_prefix=spec.pool_id[:50].strip("-") or "node",
            admin_username=spec.admin_user_name,
            admin_password=spec.admin_password or None,
            custom_data=custom_data,
            linux_configuration=linux,
        )


def _check_pool_id(pool_id: str) -> None:
    if not _POOL_ID.fullmatch(pool_id):
        raise ValueError(f"invalid pool id {pool_id!r}: use 1-60 characters [a-z0-9-]")


def _instance_order(instance_id: str) -> tuple[int, str]:
    """Instance ids are decimal numbers: order "10" after "9"."""
    return (int(instance_id), "") if instance_id.isdigit() else (1 << 62, instance_id)


def _image(reference: Mapping[str, Any]) -> ImageReference:
    """Batch AI's imageReference (publisher/offer/sku/version, or virtualMachineImageId) as Azure's."""
    image_id = reference.get("virtualMachineImageId") or reference.get("virtual_machine_image_id")
    if image_id:
        return ImageReference(id=image_id)
    if not reference.get("publisher"):
        return ImageReference(**DEFAULT_IMAGE)
    return ImageReference(publisher=reference["publisher"], offer=reference.get("offer"),
                          sku=reference.get("sku"), version=reference.get("version") or "latest")


def _provisioning_state(vm: VirtualMachineScaleSetVM) -> str:
    return (vm.properties.provisioning_state if vm.properties is not None else None) or "Creating"


def _state(vm: VirtualMachineScaleSetVM) -> NodeState:
    """The node state for an instance's provisioning state (unknown states count as creating)."""
    return _STATES.get(_provisioning_state(vm).lower(), "creating")


def _failure_details(vm: VirtualMachineScaleSetVM) -> str:
    """Why an instance failed, from its instance view's status messages."""
    parts = [f"provisioning state {_provisioning_state(vm)}"]
    view = vm.properties.instance_view if vm.properties is not None else None
    for status in (view.statuses or []) if view is not None else []:
        text = status.message or status.display_status
        if text and (status.code or "").lower().startswith("provisioningstate"):
            parts.append(f"{status.code}: {text}")
    return "; ".join(parts)
