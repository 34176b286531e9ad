"""Request bodies built from `batchai` flags and Batch AI style config files (pure, no I/O).

A config file holds what the API's PUT takes, `{"properties": {...}}`, as `az batchai` read it;
flags given on the command line override or add to it. As in `az batchai`, the strings
`<AZURE_BATCHAI_STORAGE_ACCOUNT>` and `<AZURE_BATCHAI_STORAGE_KEY>` in a file's mount volumes are
replaced by the storage account's name and key (flags, or the environment variables of the same
names). `$AZ_BATCHAI_...` variables are left alone: the nodes expand them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from shared.cli.common import UserError

ACCOUNT_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"
KEY_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_KEY>"
IMAGES = {  # az batchai's image aliases
    "ubuntults": {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"},
    "ubuntudsvm": {"publisher": "microsoft-ads", "offer": "linux-data-science-vm-ubuntu", "sku": "linuxdsvmubuntu"},
}


@dataclass(frozen=True)
class Storage:
    """The storage account behind --afs-name/--bfs-name and the file's placeholders."""

    account: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class MountFlags:
    afs_name: str | None = None
    afs_mount_path: str = "afs"
    bfs_name: str | None = None
    bfs_mount_path: str = "bfs"
    nfs: str | None = None  # a file server's id (the command turns a name into one)
    nfs_mount_path: str = "nfs"


@dataclass(frozen=True)
class ClusterFlags:
    vm_size: str | None = None
    vm_priority: str | None = None
    target: int | None = None
    min_nodes: int | None = None
    max_nodes: int | None = None
    image: str | None = None
    user_name: str | None = None
    password: str | None = None
    ssh_key: str | None = None
    subnet: str | None = None
    setup_task: str | None = None
    setup_task_output: str | None = None


def properties_of(config: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """A copy of the file's `properties` (empty without a file)."""
    if config is None:
        return {}
    props = config.get("properties")
    if not isinstance(props, dict):
        raise UserError(f"The {what} must hold {{\"properties\": {{...}}}}, as Batch AI's config files do.")
    return copy.deepcopy(props)


def cluster_body(config: dict[str, Any] | None, flags: ClusterFlags, mounts: MountFlags, storage: Storage,
                 default_user: str, default_ssh_key: str | None) -> dict[str, Any]:
    props = properties_of(config, "cluster config file")
    if flags.vm_size:
        props["vmSize"] = flags.vm_size
    props.setdefault("vmSize", "STANDARD_NC6")
    if flags.vm_priority:
        props["vmPriority"] = flags.vm_priority
    if flags.min_nodes is not None or flags.max_nodes is not None:
        if flags.min_nodes is None or flags.max_nodes is None:
            raise UserError("Auto-scale needs both --min and --max.")
        if flags.target is not None:
            raise UserError("Give --target/-t for a fixed size or --min and --max for auto-scale, not both.")
        props["scaleSettings"] = {"autoScale": {"minimumNodeCount": flags.min_nodes,
                                                "maximumNodeCount": flags.max_nodes}}
    elif flags.target is not None:
        props["scaleSettings"] = {"manual": {"targetNodeCount": flags.target}}
    props.setdefault("scaleSettings", {"manual": {"targetNodeCount": 1}})
    if flags.image:
        props["virtualMachineConfiguration"] = {"imageReference": image_reference(flags.image)}
    account = props.get("userAccountSettings") or {}
    if flags.user_name:
        account["adminUserName"] = flags.user_name
    account.setdefault("adminUserName", default_user)
    if flags.password:
        account["adminUserPassword"] = flags.password
    if flags.ssh_key:
        account["adminUserSshPublicKey"] = flags.ssh_key
    if not account.get("adminUserPassword") and not account.get("adminUserSshPublicKey") and default_ssh_key:
        account["adminUserSshPublicKey"] = default_ssh_key
    props["userAccountSettings"] = account
    if flags.subnet:
        props["subnet"] = {"id": flags.subnet}
    if flags.setup_task or flags.setup_task_output:
        if not (flags.setup_task and flags.setup_task_output):
            raise UserError("--setup-task needs --setup-task-output (where its stdout and stderr go), and back.")
        node_setup = props.setdefault("nodeSetup", {})
        node_setup["setupTask"] = {**(node_setup.get("setupTask") or {}), "commandLine": flags.setup_task,
                                   "stdOutErrPathPrefix": flags.setup_task_output}
    volumes = add_mounts((props.get("nodeSetup") or {}).get("mountVolumes"), mounts, storage)
    if volumes:
        props.setdefault("nodeSetup", {})["mountVolumes"] = volumes
    return {"properties": props}


def job_body(config: dict[str, Any] | None, *, cluster_id: str | None, node_count: int | None,
             priority: str | None, std_out_err_path_prefix: str | None, mounts: MountFlags,
             storage: Storage) -> dict[str, Any]:
    props = properties_of(config, "job config file")
    if cluster_id:
        props["cluster"] = {"id": cluster_id}
    if not (props.get("cluster") or {}).get("id"):
        raise UserError("The job needs a cluster: give --cluster/-c, or properties.cluster.id in the config file.")
    if node_count is not None:
        props["nodeCount"] = node_count
    if priority:
        props["schedulingPriority"] = priority
    if std_out_err_path_prefix:
        props["stdOutErrPathPrefix"] = std_out_err_path_prefix
    volumes = add_mounts(props.get("mountVolumes"), mounts, storage)
    if volumes:
        props["mountVolumes"] = volumes
    return {"properties": props}


def add_mounts(volumes: dict[str, Any] | None, mounts: MountFlags, storage: Storage) -> dict[str, Any] | None:
    """The file's mount volumes with the flags' shares added and the placeholders filled in."""
    volumes = copy.deepcopy(volumes) if volumes else {}
    if mounts.afs_name:
        account, key = _account(storage, "--afs-name")
        volumes.setdefault("azureFileShares", []).append({
            "accountName": account, "azureFileUrl": f"https://{account}.file.core.windows.net/{mounts.afs_name}",
            "credentials": {"accountKey": key}, "relativeMountPath": mounts.afs_mount_path})
    if mounts.bfs_name:
        account, key = _account(storage, "--bfs-name")
        volumes.setdefault("azureBlobFileSystems", []).append({
            "accountName": account, "containerName": mounts.bfs_name, "credentials": {"accountKey": key},
            "relativeMountPath": mounts.bfs_mount_path})
    if mounts.nfs:
        volumes.setdefault("fileServers", []).append({
            "fileServer": {"id": mounts.nfs}, "relativeMountPath": mounts.nfs_mount_path})
    return _fill_placeholders(volumes, storage) if volumes else None


def _account(storage: Storage, flag: str) -> tuple[str, str]:
    if not storage.account or not storage.key:
        raise UserError(f"{flag} needs a storage account: give --storage-account-name and --storage-account-key, "
                        "or set AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY.")
    return storage.account, storage.key


def _fill_placeholders(value: Any, storage: Storage) -> Any:
    if isinstance(value, dict):
        return {k: _fill_placeholders(v, storage) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_placeholders(v, storage) for v in value]
    if isinstance(value, str) and (ACCOUNT_PLACEHOLDER in value or KEY_PLACEHOLDER in value):
        for placeholder, given, variable in ((ACCOUNT_PLACEHOLDER, storage.account, "AZURE_BATCHAI_STORAGE_ACCOUNT"),
                                             (KEY_PLACEHOLDER, storage.key, "AZURE_BATCHAI_STORAGE_KEY")):
            if placeholder in value:
                if not given:
                    raise UserError(f"The config file uses {placeholder}: give --storage-account-"
                                    f"{'name' if 'ACCOUNT' in variable else 'key'} or set {variable}.")
                value = value.replace(placeholder, given)
    return value


def image_reference(image: str) -> dict[str, str]:
    """An alias (UbuntuLTS, UbuntuDSVM) or publisher:offer:sku[:version]."""
    known = IMAGES.get(image.lower())
    if known:
        return dict(known)
    parts = image.split(":")
    if len(parts) not in (3, 4) or not all(parts):
        raise UserError(f"Unknown image '{image}': use UbuntuLTS, UbuntuDSVM or publisher:offer:sku[:version].")
    reference = {"publisher": parts[0], "offer": parts[1], "sku": parts[2]}
    if len(parts) == 4:
        reference["version"] = parts[3]
    return reference
