"""Where a job's files are, and listing them with download URLs (Jobs_ListOutputFiles).

A directory of a job (its stdouterr directory or an output directory) is a path template that the
nodes expand. On a mounted volume it lives in that volume's storage: a blob container through the
blob port (SAS URLs); in the local pool, a share, file server or unmanaged file system as a folder of
the data folder (URLs signed by the local host); on VMs, an Azure file share through the file share
port (SAS URLs), while a file server's or an unmanaged file system's files can only be read on the
nodes that mount them: listing those says so (NotListable). Elsewhere, in the local pool, it is a
folder of the job's master node, expanded with that node's variables.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared import errors, pools
from shared.node_storage import resolved_volumes
from shared.composition import Services
from shared.documents.base import JsonObject, read
from shared.documents.resources import ClusterDocument, JobDocument
from shared.job_environment import JobPaths, job_variables, output_dir, own_variables, stdouterr_dir
from shared.models.common import climbs
from shared.models.job import JobBaseProperties
from shared.ports.blob_store import Account
from shared.ports.file_shares import ShareUnreachable
from shared.volumes import Location, Volume, expand, local_folder, locate

STDOUTERR = "stdouterr"


class NotListable(Exception):
    """The directory is where this service cannot list it; the message says where, why, and what to do."""


@dataclass(frozen=True)
class Entry:
    name: str
    is_directory: bool
    size: int = 0
    modified: datetime | None = None
    url: str | None = None

    def to_wire(self) -> JsonObject:
        if self.is_directory:
            return {"name": self.name, "fileType": "directory"}
        modified = self.modified.isoformat(timespec="milliseconds").replace("+00:00", "Z") if self.modified else None
        return {"name": self.name, "fileType": "file", "downloadUrl": self.url,
                "properties": {"lastModified": modified, "contentLength": self.size}}


def list_directory(svc: Services, job: JobDocument, output_id: str, directory: str, expires: datetime
                   ) -> list[Entry]:
    """The entries of one job directory (and `directory` below it), files with URLs valid until
    `expires`. Nothing before the job has run anywhere, or where no storage can be reached."""
    sub = _clean(directory)
    where = _locate(svc, job, output_id)
    if isinstance(where, tuple):
        volume, inside = where
        inner = posixpath.join(inside, sub) if sub else inside
        if volume.kind == "azureBlob":
            return _blob_entries(svc, volume, inner, expires)
        if svc.settings.nodes_on_this_machine:
            return _folder_entries(svc, local_folder(volume, svc.settings.storage_dir) / inner, expires)
        if volume.kind == "azureFileShare":
            return _share_entries(svc, volume, inner, expires)
        raise NotListable(_only_on_nodes(volume, inner))
    return _folder_entries(svc, where / sub, expires) if where is not None else []


def read_file(svc: Services, job: JobDocument, output_id: str, name: str, max_bytes: int) -> bytes | None:
    """The last `max_bytes` of one file of a job directory (a sweep reads its trials' metrics
    so); None while it does not exist. Served areas only, as for listing."""
    where = _locate(svc, job, output_id)
    if isinstance(where, tuple):
        volume, inside = where
        if volume.kind == "azureBlob":
            try:
                data = svc.blobs.read_bytes(Account(volume.account, volume.key), volume.container,
                                            posixpath.join(inside, name).strip("/"))
            except Exception:  # not there (yet)
                return None
            return data[-max_bytes:]
        if not svc.settings.nodes_on_this_machine:
            return None  # a share or file server of VMs: read on the nodes only (see list_directory)
        where = local_folder(volume, svc.settings.storage_dir) / inside
    if where is None:
        return None
    try:
        real = svc.signer.real_path(svc.signer.relative(where / _clean(name)))
        with open(real, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - max_bytes))
            return handle.read()
    except (OSError, ValueError):
        return None


def _locate(svc: Services, job: JobDocument, output_id: str) -> tuple[Volume, str] | Path | None:
    """Where a job directory is: (volume, path inside it), a folder of the master node, or None."""
    spec = job.spec
    segment = job.props.job_output_directory_path_segment or ""
    cluster = read(svc.store, ClusterDocument, job.cluster_pk, job.cluster)
    setup = cluster.spec.node_setup if cluster is not None else None
    cluster_volumes = _volumes(svc, setup.mount_volumes.to_wire(reveal_secrets=True)
                               if setup is not None and setup.mount_volumes is not None else None)
    job_volumes = _volumes(svc, spec.mount_volumes.to_wire(reveal_secrets=True) if spec.mount_volumes else None)
    user_env = {v.name: v.value for v in spec.environment_variables or []}
    template = _template(spec, output_id, segment)
    try:
        where = locate(template, user_env, cluster_volumes, job_volumes)
    except ValueError:  # not on a volume: a folder of the node (e.g. under $AZ_BATCHAI_JOB_TEMP)
        where = Location()
    if where.volume is not None:
        return where.volume, where.inside
    return _master_folder(svc, job, cluster, output_id, segment)


def check_folder_paths(spec: JobBaseProperties) -> None:
    """A job's log and output folders stay below what they name also once the job's own variables
    are expanded (the model refuses a literal '..'; `$UP` with UP=".." would climb as well)."""
    env = own_variables(spec)
    paths = [("properties.stdOutErrPathPrefix", spec.std_out_err_path_prefix)]
    for index, item in enumerate(spec.output_directories or ()):
        here = f"properties.outputDirectories[{index}]"
        paths += [(f"{here}.pathPrefix", item.path_prefix), (f"{here}.pathSuffix", item.path_suffix or "")]
    for target, path in paths:
        if climbs(expand(path, env)):
            raise errors.InvalidParameter(f"'{target}' climbs out with '..' once the job's variables are expanded; "
                                          "a job's files stay below the folder it names.", target=target)


def expiry(svc: Services, minutes: int) -> datetime:
    return svc.clock.now() + timedelta(minutes=minutes)


def _template(spec: JobBaseProperties, output_id: str, segment: str) -> str:
    if output_id == STDOUTERR:
        return f"{spec.std_out_err_path_prefix}/{segment}/{STDOUTERR}"
    item = next(d for d in spec.output_directories or [] if d.id == output_id)
    suffix = item.path_suffix or ""
    return f"{item.path_prefix}/{segment}" + (f"/{suffix}" if suffix else "")


def _clean(directory: str) -> str:
    """A sub-directory relative to the listed one; '..' can never climb out of it."""
    parts = [p for p in directory.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("directory must not contain '..'")
    return "/".join(parts)


def _volumes(svc: Services, mount_volumes: JsonObject | None) -> list[Volume]:
    try:
        return [Volume.from_wire(v) for v in resolved_volumes(svc, mount_volumes, "mountVolumes")]
    except errors.ApiError:  # a file server deleted since: its files cannot be found any more
        return []


def _blob_entries(svc: Services, volume: Volume, prefix: str, expires: datetime) -> list[Entry]:
    account = Account(volume.account, volume.key)
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    entries = []
    for blob in svc.blobs.list(account, volume.container, prefix, delimiter="/"):
        name = blob.name[len(prefix):].rstrip("/")
        url = None if blob.is_directory else svc.blobs.download_url(account, volume.container, blob.name, expires)
        entries.append(Entry(name, blob.is_directory, blob.size, blob.last_modified, url))
    return entries


def _share_entries(svc: Services, volume: Volume, inner: str, expires: datetime) -> list[Entry]:
    if volume.problem:
        raise NotListable(f"The directory is on the file share {volume.share_url}, which cannot be listed: {volume.problem}.")
    try:
        found = svc.file_shares.list(Account(volume.account, volume.key), volume.share_url, inner, expires)
    except ShareUnreachable as exc:
        raise NotListable(f"The file share {volume.share_url} could not be listed: {exc}") from None
    return [Entry(e.name, e.is_directory, e.size, e.last_modified, e.url) for e in found]


def _only_on_nodes(volume: Volume, inner: str) -> str:
    """Why a file server's or an unmanaged file system's files are not listed here, and where to read them."""
    where = posixpath.join("/", inner)
    if volume.kind == "fileServer":
        name = volume.server.rsplit("|", 1)[-1]
        source = posixpath.join(volume.export_path, volume.source_directory.lstrip("/"), inner.lstrip("/")).rstrip("/")
        return (f"The directory is on the file server '{name}' (NFS {volume.server_address}:{source}), whose files "
                "only the nodes that mount it can read: this service does not list them. Read them on a node of the "
                "job's cluster (listRemoteLoginInformation) or on the file server (its mountSettings.fileServerPublicIP).")
    return (f"The directory ({where} on an unmanaged file system) is mounted by the nodes' own command, which this "
            "service cannot run: it does not list it. Read it on a node of the job's cluster "
            "(listRemoteLoginInformation).")


def _folder_entries(svc: Services, folder: Path, expires: datetime) -> list[Entry]:
    """A local folder's entries, only where the host serves files (see composition.SERVED_AREAS)
    and reached through no link; a link inside it (a job may plant one to anywhere) is not listed."""
    try:
        real = svc.signer.real_path(svc.signer.relative(folder))
        children = sorted(os.scandir(real), key=lambda child: child.name)
    except (OSError, ValueError):
        return []
    entries = []
    for child in children:
        try:
            info = child.stat(follow_symlinks=False)
        except OSError:
            continue  # removed meanwhile
        if stat.S_ISDIR(info.st_mode):
            entries.append(Entry(child.name, True))
        elif stat.S_ISREG(info.st_mode):
            modified = datetime.fromtimestamp(info.st_mtime).astimezone()
            url = svc.signer.url_for(real / child.name, expires)
            entries.append(Entry(child.name, False, info.st_size, modified, url))
    return entries


def _master_folder(svc: Services, job: JobDocument, cluster: ClusterDocument | None, output_id: str,
                   segment: str) -> Path | None:
    """In the local pool: the directory as the job's (last) master node expanded it."""
    if not svc.settings.nodes_on_this_machine or cluster is None or not job.nodes or not job.attempt:
        return None
    master = job.nodes[0]
    node_dir = svc.settings.pools_dir.resolve() / pools.pool_id(cluster) / master
    paths = JobPaths.of(node_dir, segment, job.attempt)
    spec = job.spec
    env = job_variables({}, "", spec, segment, paths)
    if output_id == STDOUTERR:
        return stdouterr_dir(spec, segment, env)
    item = next(d for d in spec.output_directories or () if d.id == output_id)
    return output_dir(item, segment, env)

