"""Role assignments (beside Batch AI's API): who may read, change, or also grant access to a
workspace, or to every workspace of a subscription."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field

from shared.models.base import WireModel
from shared.models.common import ProvisioningState, ProxyResource


class Role(enum.StrEnum):
    """Each role includes the ones before it."""

    READER = "reader"  # read everything, list outputs, follow logs
    CONTRIBUTOR = "contributor"  # and create, change, terminate and delete
    OWNER = "owner"  # and grant and revoke roles


class RoleAssignmentCreateProperties(WireModel):
    principal_id: str = Field(min_length=1, max_length=128)  # the Entra object id (the token's oid)
    role: Role
    principal_name: str | None = Field(default=None, max_length=256)  # for people reading the list


class RoleAssignmentCreateParameters(WireModel):
    """Body of PUT .../roleAssignments/{name}."""

    properties: RoleAssignmentCreateProperties


class RoleAssignmentProperties(WireModel):
    principal_id: str | None = None
    role: Role | None = None
    principal_name: str | None = None
    scope: str | None = None  # the workspace's or the subscription's id
    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None


class RoleAssignment(ProxyResource):
    """Answer of GET/PUT of a role assignment."""

    properties: RoleAssignmentProperties | None = None


__all__ = ["Role", "RoleAssignment", "RoleAssignmentCreateParameters", "RoleAssignmentCreateProperties",
           "RoleAssignmentProperties"]
