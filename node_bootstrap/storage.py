"""How this node reaches storage, as the control plane describes it (`agent/setup`'s "storage"):
real mounts on a VM, or in the local pool links to the folders of the data folder that stand for
shares and file servers, and blob containers through the blob port (linked when it is a local
folder, pulled and pushed when it is Azure Blob Storage or Azurite).

The cluster's volumes stay mounted while the node lives; a job's are mounted for its attempt.
`push()` uploads what changed in blob-backed folders, so files can be listed while a job runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_bootstrap.mounts import BlobSyncer, Mounts
from shared.ports.blob_store import Account, BlobStore
from shared.volumes import Volume


@dataclass
class NodeStorage:
    mode: str  # "local" or "vm"
    storage_dir: Path | None = None
    blob_root: Path | None = None  # a local folder blob store
    blob_endpoint: str = ""  # Azure Blob Storage (or Azurite): the account URL template
    work_dir: Path = Path("/var/lib/batchai/mounts")
    cluster_mounts: Mounts | None = None
    _blobs: BlobStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any], work_dir: Path | None = None) -> NodeStorage:
        blobs = data.get("blobs") or {}
        storage = cls(mode=data.get("mode", "vm"),
                      storage_dir=Path(data["storageDir"]) if data.get("storageDir") else None,
                      blob_root=Path(blobs["root"]) if blobs.get("kind") == "folder" else None,
                      blob_endpoint=blobs.get("endpoint", "") if blobs.get("kind") == "azure" else "")
        if work_dir is not None:
            storage.work_dir = work_dir
        return storage

    @property
    def local(self) -> bool:
        return self.mode == "local"

    def mount(self, volumes: list[Volume], root: Path, cluster_level: bool = False) -> list[str]:
        """Mount under `root`; the errors, one per volume that failed (never with a key)."""
        mounts = self._mounts(root)
        errors = [str(e) for e in mounts.mount_all(volumes)]
        if cluster_level:
            self.cluster_mounts = mounts
        return errors

    def for_job(self) -> JobStorage:
        return JobStorage(self)

    def push(self) -> None:
        if self.cluster_mounts is not None:
            self.cluster_mounts.push()

    def pull(self) -> list[str]:
        """Bring synced cluster-level blob folders up to date (other nodes may have written)."""
        return [str(e) for e in self.cluster_mounts.pull()] if self.cluster_mounts is not None else []

    # -- building mounts --------------------------------------------------------------------------
    def _mounts(self, root: Path) -> Mounts:
        if not self.local:
            return Mounts.vm(root, self.work_dir)
        assert self.storage_dir is not None, "a local node needs the storage folder"
        blob_link = (lambda account, container: self.blob_root / account / container) if self.blob_root else None
        blob_sync = self._blob_sync if self.blob_endpoint else None
        return Mounts.local(root, self.storage_dir, blob_link=blob_link, blob_sync=blob_sync)

    def _blob_sync(self, volume: Volume, folder: Path) -> BlobSyncer:
        from node_bootstrap.blob_sync import BlobSync

        return BlobSync(self._blob_store(), Account(volume.account, volume.key), volume.container, folder)

    def _blob_store(self) -> BlobStore:
        with self._lock:
            if self._blobs is None:
                # The Blob adapter itself: the server's composition root is no part of the agent.
                from shared.adapters.azure.azure_blobs import AzureBlobStore

                self._blobs = AzureBlobStore(self.blob_endpoint)
            return self._blobs


@dataclass
class JobStorage:
    """One attempt's view: its own volumes, and the node's, whose blob folders it pushes too."""

    node: NodeStorage
    mounts: dict[Path, Mounts] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.node.local

    def mount(self, volumes: list[Volume], root: Path) -> list[str]:
        """The job's volumes, after the node's synced ones are brought up to date."""
        root.mkdir(parents=True, exist_ok=True)
        mounts = self.node._mounts(root)
        self.mounts[root] = mounts
        return self.node.pull() + [str(e) for e in mounts.mount_all(volumes)]

    def unmount(self, volumes: list[Volume], root: Path) -> None:
        mounts = self.mounts.pop(root, None)
        if mounts is not None:
            mounts.unmount_all(volumes)

    def push(self) -> None:
        self.node.push()
        for mounts in list(self.mounts.values()):
            mounts.push()
