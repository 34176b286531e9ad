"""File servers: a VM exporting RAID-0 data disks over NFS, mounted by clusters and jobs.

``FileServerCreateParameters`` is what PUT accepts; ``FileServer`` is what the service answers.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import field_validator

from shared.models.base import WireModel
from shared.models.common import (DataDisks, MountSettings, ProxyResource, ResourceId, SshConfiguration,
                                  check_vm_size_name)


class FileServerProvisioningState(enum.StrEnum):
    """Unlike clusters and jobs, a file server can also be `updating`."""

    CREATING = "creating"
    UPDATING = "updating"
    DELETING = "deleting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FileServerBaseProperties(WireModel):
    """What a user may set when creating a file server."""

    vm_size: str
    ssh_configuration: SshConfiguration
    data_disks: DataDisks
    subnet: ResourceId | None = None

    @field_validator("vm_size")
    @classmethod
    def _vm_size_name(cls, value: str) -> str:
        return check_vm_size_name(value)


class FileServerCreateParameters(WireModel):
    """Body of PUT .../fileServers/{name}."""

    # Not `required` in the spec, but FileServerBaseProperties has required members, so a body
    # without `properties` can never be valid; requiring it gives the precise error.
    properties: FileServerBaseProperties


class FileServerProperties(WireModel):
    """A file server as the service reports it, with where it exports its disks."""

    vm_size: str | None = None
    ssh_configuration: SshConfiguration | None = None
    data_disks: DataDisks | None = None
    subnet: ResourceId | None = None
    mount_settings: MountSettings | None = None
    provisioning_state_transition_time: datetime | None = None
    creation_time: datetime | None = None
    provisioning_state: FileServerProvisioningState | None = None


class FileServer(ProxyResource):
    """Answer of GET/PUT of a file server."""

    properties: FileServerProperties | None = None


class FileServerListResult(WireModel):
    """One page of file servers."""

    value: list[FileServer] | None = None
    next_link: str | None = None


__all__ = [
    "FileServer",
    "FileServerBaseProperties",
    "FileServerCreateParameters",
    "FileServerListResult",
    "FileServerProperties",
    "FileServerProvisioningState",
]
