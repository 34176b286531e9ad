"""Volumes that clusters and jobs mount, resolved from Batch AI's wire JSON into one flat shape.

The control plane resolves `mountVolumes` (cluster: `nodeSetup.mountVolumes`, job: `mountVolumes`)
into `Volume`s: a file server's ARM id becomes its address and export path, a share URL its share
name. It sends them to the node that mounts them (`Volume.to_wire`, key included: the node needs
it), and uses them to tell where a job's output path lives (`locate`). Pure: no I/O, no SDKs.

Cluster volumes live under $AZ_BATCHAI_MOUNT_ROOT/<relativeMountPath>, job volumes under
$AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath> (ENVIRONMENT.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.ids import FILE_SERVER, ResourceRef

AZURE_FILE_SHARE = "azureFileShare"
AZURE_BLOB = "azureBlob"
FILE_SERVER_KIND = "fileServer"
UNMANAGED = "unmanaged"
KINDS = (AZURE_FILE_SHARE, AZURE_BLOB, FILE_SERVER_KIND, UNMANAGED)

MOUNT_ROOT = "AZ_BATCHAI_MOUNT_ROOT"
JOB_MOUNT_ROOT = "AZ_BATCHAI_JOB_MOUNT_ROOT"
DEFAULT_MODE = "0777"  # the spec's default fileMode / directoryMode

# Key Vault is not read by this service: such a volume travels without a key and carries this
# problem, which the agent reports as the volume's mount error instead of mounting without a key.
KEY_VAULT_PROBLEM = ("its credentials give accountKeySecretReference, but this service does not read Key Vault "
                     "secrets; give credentials.accountKey instead")


@dataclass(frozen=True)
class Volume:
    """One volume, as a node mounts it; only the fields of its `kind` are set.

    `key` is the storage account key: excluded from repr, but part of `to_wire` (the node needs
    it). `problem` is set when the control plane could resolve the volume but not make it
    mountable (a Key Vault reference); the node reports it instead of mounting.
    """

    kind: str
    relative_mount_path: str
    account: str = ""
    key: str = dataclasses.field(default="", repr=False)
    share: str = ""
    share_url: str = ""
    container: str = ""
    server: str = ""  # stable name of a file server (its store key), for local folders
    server_address: str = ""
    export_path: str = ""
    source_directory: str = ""
    mount_options: str = ""
    mount_command: str = ""
    file_mode: str = DEFAULT_MODE
    directory_mode: str = DEFAULT_MODE
    problem: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown volume kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    def __repr__(self) -> str:
        """Only the fields that are set, never the key: volumes end up in logs and messages."""
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                          if f.repr and getattr(self, f.name) != f.default)
        return f"Volume({shown})"

    def to_wire(self) -> dict[str, str]:
        """camelCase dict without fields left at their default; carries the key, so it is only
        for the node that mounts the volume (never logged, never in a read of a resource)."""
        return {_camel(f.name): value for f in dataclasses.fields(self)
                if (value := getattr(self, f.name)) != f.default}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Volume:
        """Inverse of `to_wire`; unknown keys are ignored (a newer control plane may add some)."""
        names = {_camel(f.name): f.name for f in dataclasses.fields(cls)}
        if "kind" not in data or "relativeMountPath" not in data:
            raise ValueError("a volume needs 'kind' and 'relativeMountPath'")
        return cls(**{names[k]: str(v) for k, v in data.items() if k in names and v is not None})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --------------------------------------------------------------------------------------------------
# Wire JSON -> volumes
# --------------------------------------------------------------------------------------------------

FileServerLookup = Callable[[str], dict[str, Any] | None]  # why: the file server as stored (JSON); the node imports no documents


def volumes_of(mount_volumes: Mapping[str, Any] | None, file_server: FileServerLookup, *,
               where: str = "mountVolumes") -> list[Volume]:
    """Every volume of a stored `mountVolumes` (secret values kept), in wire order by kind.

    `file_server(arm_id)` returns that file server's stored document or resource (None when it
    does not exist). `where` prefixes field names in errors, e.g. "nodeSetup.mountVolumes".
    Raises ValueError naming the field when a volume cannot be resolved.
    """
    spec = mount_volumes or {}
    volumes: list[Volume] = []
    for index, item in enumerate(spec.get("azureFileShares") or ()):
        volumes.append(_file_share(item, f"{where}.azureFileShares[{index}]"))
    for item in spec.get("azureBlobFileSystems") or ():
        volumes.append(_blob(item))
    for index, item in enumerate(spec.get("fileServers") or ()):
        volumes.append(_file_server(item, file_server, f"{where}.fileServers[{index}]"))
    for item in spec.get("unmanagedFileSystems") or ():
        volumes.append(Volume(UNMANAGED, item["relativeMountPath"], mount_command=item["mountCommand"]))
    return volumes


def _key(credentials: Mapping[str, Any] | None) -> tuple[str, str]:
    """(key, problem): a key given inline, or none and the reason the node cannot mount."""
    key = (credentials or {}).get("accountKey")
    return (key, "") if key else ("", KEY_VAULT_PROBLEM)


def _file_share(item: Mapping[str, Any], here: str) -> Volume:
    url = item["azureFileUrl"]
    share = urlsplit(url).path.strip("/").split("/")[0]
    if not share:
        raise ValueError(f"{here}.azureFileUrl {url!r} names no share: expected "
                         "https://<account>.file.core.windows.net/<share>")
    key, problem = _key(item.get("credentials"))
    return Volume(AZURE_FILE_SHARE, item["relativeMountPath"], account=item["accountName"], key=key, share=share,
                  share_url=url, file_mode=item.get("fileMode") or DEFAULT_MODE,
                  directory_mode=item.get("directoryMode") or DEFAULT_MODE, problem=problem)


def _blob(item: Mapping[str, Any]) -> Volume:
    key, problem = _key(item.get("credentials"))
    return Volume(AZURE_BLOB, item["relativeMountPath"], account=item["accountName"], key=key,
                  container=item["containerName"], mount_options=item.get("mountOptions") or "", problem=problem)


def _file_server(item: Mapping[str, Any], lookup: FileServerLookup, here: str) -> Volume:
    arm_id = (item.get("fileServer") or {}).get("id") or ""
    ref = ResourceRef.parse(arm_id, FILE_SERVER)
    if ref is None:
        raise ValueError(f"{here}.fileServer.id {arm_id!r} is not the resource id of a Batch AI file server")
    found = lookup(arm_id)
    if found is None:
        raise ValueError(f"{here}.fileServer.id: the file server {arm_id!r} does not exist")
    properties = found.get("resource", found).get("properties") or {}
    settings = properties.get("mountSettings") or {}
    if not settings.get("fileServerInternalIP") or not settings.get("mountPoint"):
        state = properties.get("provisioningState") or "unknown"
        raise ValueError(f"{here}.fileServer.id: the file server {arm_id!r} is not ready (provisioningState {state}: "
                         "it has no mountSettings yet)")
    source = item.get("sourceDirectory") or ""
    if _escapes(source.lstrip("/")):
        raise ValueError(f"{here}.sourceDirectory {source!r} must stay inside the file server (no '..')")
    return Volume(FILE_SERVER_KIND, item["relativeMountPath"], server=ref.key,
                  server_address=settings["fileServerInternalIP"], export_path=settings["mountPoint"],
                  source_directory=source, mount_options=item.get("mountOptions") or "")


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative) if relative else "."
    return normal == ".." or normal.startswith("../")


# --------------------------------------------------------------------------------------------------
# The local pool: folders that stand for shares
# --------------------------------------------------------------------------------------------------


def local_folder(volume: Volume, storage_dir: Path) -> Path:
    """The folder under `storage_dir` that stands for a volume on a one-machine pool, the same
    for every node and job that names the same share (so they see each other's files)."""
    if volume.kind == AZURE_FILE_SHARE:
        return storage_dir / "fileshares" / _segment(volume.account) / _segment(volume.share)
    if volume.kind == FILE_SERVER_KIND:
        source = posixpath.normpath(volume.source_directory.lstrip("/") or ".")
        if _escapes(source):
            raise ValueError(f"sourceDirectory {volume.source_directory!r} leaves the file server")
        folder = storage_dir / "fileservers" / _segment(volume.server)
        return folder if source == "." else folder / source
    if volume.kind == UNMANAGED:
        return storage_dir / "unmanaged" / hashlib.sha256(volume.mount_command.encode()).hexdigest()[:16]
    raise ValueError("blob containers have no local folder here: they live in the blob store")


def _segment(name: str) -> str:
    """A name used as one folder name: it must not climb out of, or split, the folder."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise ValueError(f"{name!r} cannot be used as a folder name")
    return name


# --------------------------------------------------------------------------------------------------
# Paths: expansion and where a path lives
# --------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def expand(text: str, env: Mapping[str, str]) -> str:
    """$VAR and ${VAR} replaced from `env`, as a shell would in a path; unknown ones are left as
    they are (the node's shell may still know them), and values are not expanded again."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


# Stand-ins for the node's mount roots while expanding: the control plane does not know the
# node's real folders, and NUL cannot occur in a user's path or variable.
_ROOTS = {MOUNT_ROOT: "/\x00cluster", JOB_MOUNT_ROOT: "/\x00job"}


@dataclass(frozen=True)
class Location:
    """Where a path lives: inside a volume (`volume`, `scope` "cluster" or "job", `inside` the
    normalised path within it, "" for its root), or, when `volume` is None, at `absolute`."""

    volume: Volume | None = None
    scope: str = ""
    inside: str = ""
    absolute: str = ""

    @property
    def on_volume(self) -> bool:
        return self.volume is not None


def locate(path: str, env: Mapping[str, str], cluster_volumes: Sequence[Volume],
           job_volumes: Sequence[Volume]) -> Location:
    """Resolve a job's path template (`$AZ_BATCHAI_MOUNT_ROOT/afs/out`, `${MYVAR}/x`) to a volume
    and a path inside it; the deepest matching relativeMountPath wins. `env` holds the job's
    environmentVariables, which override the roots as they would on the node.

    Raises ValueError for a path that is not absolute, leaves its mount root through '..', or
    is under a mount root but on none of its volumes (node-local: nothing to list from here).
    """
    expanded = expand(path, {**_ROOTS, **env})
    for name, (scope, volumes) in {MOUNT_ROOT: ("cluster", cluster_volumes),
                                   JOB_MOUNT_ROOT: ("job", job_volumes)}.items():
        root = _ROOTS[name]
        if expanded == root or expanded.startswith(root + "/"):
            return _on_volume(path, name, scope, expanded[len(root) + 1:], volumes)
    if "\x00" in expanded:
        raise ValueError(f"{path!r}: a mount root can only start a path")
    if not expanded.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path once expanded ({expanded!r})")
    return Location(absolute="/" + posixpath.normpath(expanded).lstrip("/"))


def _on_volume(path: str, root: str, scope: str, rest: str, volumes: Sequence[Volume]) -> Location:
    rest = posixpath.normpath(rest) if rest.strip("/") else "."
    if _escapes(rest):
        raise ValueError(f"{path!r} leaves ${root} through '..'")
    best: tuple[str, Volume] | None = None
    for volume in volumes:
        mount = posixpath.normpath(volume.relative_mount_path)
        if (rest == mount or rest.startswith(mount + "/")) and (best is None or len(mount) > len(best[0])):
            best = (mount, volume)
    if best is None:
        raise ValueError(f"{path!r} is under ${root} but on none of the {scope}'s volumes")
    mount, volume = best
    return Location(volume=volume, scope=scope, inside=rest[len(mount) + 1:])
