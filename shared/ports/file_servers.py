"""File server port: the NFS server VMs that clusters and jobs mount (Batch AI's file servers).

On Azure, one VM with its data disks in RAID 0, a NIC in the nodes' subnet, a network security
group and a public IP, set up by cloud-init to export its disks over NFS; locally, nothing to make:
a folder of the data folder stands for each file server (shared/volumes.py).

Neither operation waits: each starts what comes next (or finds it under way) and says where things
stand, so that the control plane can call it again on later rounds, from any process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MOUNT_POINT = "/mnt/data"  # where Batch AI's file servers mounted (and exported) their disks

FileServerStage = Literal["creating", "succeeded", "failed"]


class FileServerSpec(BaseModel):
    """What to make; the admin password is a secret (never in repr or logs)."""

    model_config = ConfigDict(frozen=True)

    server_id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")  # names the server's Azure resources
    vm_size: str
    admin_user_name: str
    admin_password: str | None = Field(default=None, repr=False)
    admin_ssh_public_key: str | None = None
    disk_count: int = Field(ge=1, le=64)
    disk_size_gb: int = Field(ge=1, le=32767)
    storage_account_type: str  # Standard_LRS | Premium_LRS
    caching_type: Literal["none", "readonly", "readwrite"] = "none"
    subnet_id: str | None = None  # None: the deployment's default
    ssh_sources: tuple[str, ...] = ()  # sshConfiguration.publicIPsToAllow; empty: SSH from anywhere
    location: str = "local"
    mount_point: str = MOUNT_POINT
    tags: dict[str, str] = {}


class FileServerState(BaseModel):
    """Where a file server stands: its addresses once it is ready, or why it failed."""

    model_config = ConfigDict(frozen=True)

    stage: FileServerStage
    internal_ip: str = ""
    public_ip: str = ""
    mount_point: str = ""
    details: str = ""  # why it failed, or what it is waiting for


class FileServerError(Exception):
    """A call failed for now (throttled, unreachable, refused); the message says why. The next round retries."""


class FileServers(ABC):
    """The port. Implementations must be safe to share between threads."""

    @abstractmethod
    def provision(self, spec: FileServerSpec) -> FileServerState:
        """Start making the file server, or carry on where an earlier call left off; never waits.
        Calls for a server already made change nothing and report it."""

    @abstractmethod
    def delete(self, server_id: str) -> bool:
        """Start removing everything made for the server, or carry on; True once nothing is left."""

    # Whether a server needs a subnet (its request's, or the default): Azure's VMs do, folders do not.
    needs_subnet = False

    def default_subnet_id(self) -> str | None:
        """The subnet servers go into when their request names none (None: no such default)."""
        return None

    def close(self) -> None:
        """Release connections."""
