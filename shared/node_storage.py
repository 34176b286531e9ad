"""What a node needs to reach storage, as the control plane tells it (agent API): the volumes of a
cluster or job resolved against the store, and how storage is reached in this deployment."""

from __future__ import annotations

from shared import errors, volumes
from shared.composition import Services
from shared.documents.base import JsonObject
from shared.ids import FILE_SERVER, ResourceRef
from shared.models.agent import MountableVolume, StorageBlobs, StorageInfo
from shared.models.common import MountVolumes
from shared.resources import R


def storage_info(svc: Services) -> StorageInfo:
    """How a node reaches storage: real mounts on VMs; in the local pool, folders of the data
    folder stand for shares and file servers, and blob containers go through the blob port."""
    settings = svc.settings
    if not settings.nodes_on_this_machine:
        return StorageInfo(mode="vm")
    blobs = (StorageBlobs(kind="azure", endpoint=settings.blob_endpoint) if settings.blobs == "azure"
             else StorageBlobs(kind="folder", root=str(settings.blobs_dir.resolve())))
    return StorageInfo(mode="local", storage_dir=str(settings.storage_dir), blobs=blobs)


def mountable_volumes(svc: Services, mount_volumes: MountVolumes | None, target: str) -> list[MountableVolume]:
    """A cluster's or job's volumes as its nodes mount them (with their keys: only for those nodes)."""
    given = mount_volumes.to_wire(reveal_secrets=True) if mount_volumes is not None else None  # volumes_of reads JSON
    return [MountableVolume.model_validate(v) for v in resolved_volumes(svc, given, target)]


# JSON: a stored mountVolumes' JSON in (what shared/volumes.py's volumes_of reads), Volume.to_wire()
# out (job_files.py reads them back); the agent API's typed form is mountable_volumes above.
def resolved_volumes(svc: Services, mount_volumes: JsonObject | None, target: str) -> list[JsonObject]:
    """The volumes with what a node needs to mount them (a file server's address, keys)."""
    def file_server(arm_id: str) -> JsonObject | None:  # the file server's stored resource (JSON)
        ref = ResourceRef.parse(arm_id, FILE_SERVER)
        doc = svc.store.read(R, ref.pk, ref.key) if ref else None
        return doc["resource"] if doc else None

    try:
        return [v.to_wire() for v in volumes.volumes_of(mount_volumes, file_server, where=target)]
    except ValueError as exc:
        raise errors.InvalidParameter(str(exc), target=target) from None
