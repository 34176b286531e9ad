"""Request bodies built from `batchai` flags and Batch AI style config files (pure, no I/O).

A config file holds what the API's PUT takes, `{"properties": {...}}`, as `az batchai` read it;
flags given on the command line override or add to it. A file's mount volumes are completed as
`az batchai` completed them: the strings `<AZURE_BATCHAI_STORAGE_ACCOUNT>` and
`<AZURE_BATCHAI_STORAGE_KEY>` become the storage account's name and key (flags, or the environment
variables of the same names), a share's `accountName` comes from its URL when missing, and a share or
container of that account without credentials gets its key. `$AZ_BATCHAI_...` variables are left
alone: the nodes expand them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.cli.common import UserError

ACCOUNT_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"
KEY_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_KEY>"
# What `--use-auto-storage` mounts (az batchai's names and paths).
AUTO_SHARE, AUTO_SHARE_PATH = "batchaishare", "autoafs"
AUTO_CONTAINER, AUTO_CONTAINER_PATH = "batchaicontainer", "autobfs"
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
    auto_storage: Storage | None = None  # --use-auto-storage: its account's share and container


@dataclass(frozen=True)
class ClusterFlags:
    vm_size: str | None = None
    vm_priority: str | None = None
    target: int | None = None
    min_nodes: int | None = None
    max_nodes: int | None = None
    image: str | None = None
    custom_image: str | None = None
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
    scale = scale_settings(flags.target, flags.min_nodes, flags.max_nodes)
    if scale:
        props["scaleSettings"] = scale
    props.setdefault("scaleSettings", {"manual": {"targetNodeCount": 1}})
    if flags.custom_image and not flags.image:
        raise UserError("--custom-image needs --image: the Marketplace image the custom image was made from.")
    if flags.image:
        reference = image_reference(flags.image)
        if flags.custom_image:
            reference["virtualMachineImageId"] = flags.custom_image
        props["virtualMachineConfiguration"] = {"imageReference": reference}
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
    volumes = add_mounts((props.get("nodeSetup") or {}).get("mountVolumes"), mounts, storage,
                         "properties.nodeSetup.mountVolumes")
    if volumes:
        props.setdefault("nodeSetup", {})["mountVolumes"] = volumes
    return {"properties": props}


def scale_settings(target: int | None, min_nodes: int | None, max_nodes: int | None) -> dict[str, Any] | None:
    """Scale settings from -t, --min and --max as `az batchai cluster create` read them: --min and
    --max go together; equal bounds are a fixed size, unless -t names another start (then auto-scale
    from -t); other bounds auto-scale, starting at -t nodes; -t alone is a fixed size. None when none
    is given: the config file's, or the default."""
    if target is None and min_nodes is None and max_nodes is None:
        return None
    if (min_nodes is None) != (max_nodes is None):
        raise UserError("Auto-scale needs both --min and --max.")
    if min_nodes is None or max_nodes is None:
        return {"manual": {"targetNodeCount": target}}
    if min_nodes > max_nodes:
        raise UserError(f"--min ({min_nodes}) must not exceed --max ({max_nodes}).")
    if min_nodes == max_nodes and target in (None, min_nodes):
        return {"manual": {"targetNodeCount": min_nodes}}
    auto: dict[str, int] = {"minimumNodeCount": min_nodes, "maximumNodeCount": max_nodes}
    if target is not None:  # az sends 0 without -t; the spec's default says the same
        auto["initialNodeCount"] = target
    return {"autoScale": auto}


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


def add_mounts(volumes: dict[str, Any] | None, mounts: MountFlags, storage: Storage,
               where: str = "properties.mountVolumes") -> dict[str, Any] | None:
    """The file's mount volumes (at `where`) completed as az completes them, then the flags' volumes added."""
    volumes = complete_volumes(volumes, storage, where) if volumes else {}
    shares: list[tuple[str, str, Storage | None, str]] = []  # (kind, name, account, mount path)
    if mounts.afs_name:
        shares.append(("afs", mounts.afs_name, None, mounts.afs_mount_path))
    if mounts.bfs_name:
        shares.append(("bfs", mounts.bfs_name, None, mounts.bfs_mount_path))
    if mounts.auto_storage:
        shares += [("afs", AUTO_SHARE, mounts.auto_storage, AUTO_SHARE_PATH),
                   ("bfs", AUTO_CONTAINER, mounts.auto_storage, AUTO_CONTAINER_PATH)]
    for kind, name, owner, path in shares:
        account, key = _account(owner or storage, "--use-auto-storage" if owner else f"--{kind}-name")
        if kind == "afs":
            volumes.setdefault("azureFileShares", []).append({
                "accountName": account, "azureFileUrl": f"https://{account}.file.core.windows.net/{name}",
                "credentials": {"accountKey": key}, "relativeMountPath": path})
        else:
            volumes.setdefault("azureBlobFileSystems", []).append({
                "accountName": account, "containerName": name, "credentials": {"accountKey": key},
                "relativeMountPath": path})
    if mounts.nfs:
        volumes.setdefault("fileServers", []).append({
            "fileServer": {"id": mounts.nfs}, "relativeMountPath": mounts.nfs_mount_path})
    return volumes or None


def complete_volumes(volumes: dict[str, Any], storage: Storage, where: str) -> dict[str, Any]:
    """A config file's mount volumes as az sent them: placeholders filled in, a share's accountName
    taken from its URL, and credentials added to every share and container that has none. az looked
    a key up in Azure when the account was not the one given; batchai knows only the key it is given."""
    volumes = _fill_placeholders(copy.deepcopy(volumes), storage)
    for kind in ("azureFileShares", "azureBlobFileSystems"):
        for index, volume in enumerate(_entries(volumes, kind)):
            if kind == "azureFileShares" and not volume.get("accountName"):
                volume["accountName"] = _account_of_url(volume.get("azureFileUrl"))
            if volume.get("accountName"):  # none: the service names the missing field
                _add_credentials(volume, storage, f"{where}.{kind}[{index}]")
    return volumes


def _entries(volumes: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    entries = volumes.get(kind) or []
    if not isinstance(entries, list):
        return []  # not a list: the service names the field
    return [entry for entry in entries if isinstance(entry, dict)]


def _account_of_url(url: Any) -> str | None:
    """The storage account of https://<account>.file.core.windows.net/<share> (None: not such a URL)."""
    host = (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    account, dot, _ = host.partition(".")
    return account if dot and account else None


def _add_credentials(volume: dict[str, Any], storage: Storage, where: str) -> None:
    credentials = volume.get("credentials")
    if credentials is not None and not isinstance(credentials, dict):
        return  # not an object: the service names the field
    if credentials and (credentials.get("accountKey") or credentials.get("accountKeySecretReference")):
        return
    account = volume["accountName"]
    if account != storage.account or not storage.key:
        raise UserError(f"{where} (storage account '{account}') has no credentials: give the account's key with "
                        "--storage-account-name and --storage-account-key, or AZURE_BATCHAI_STORAGE_ACCOUNT and "
                        "AZURE_BATCHAI_STORAGE_KEY, or credentials.accountKey in the file.")
    volume["credentials"] = {**(credentials or {}), "accountKey": storage.key}


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
