"""Workspaces: the top of the hierarchy, and the only resource with a location and tags.

``WorkspaceCreateParameters`` / ``WorkspaceUpdateParameters`` are what PUT / PATCH accept;
``Workspace`` is what the service answers.
"""

from __future__ import annotations

from datetime import datetime

from shared.models.base import WireModel
from shared.models.common import ProvisioningState, Resource, Tags


class WorkspaceCreateParameters(WireModel):
    """Body of PUT .../workspaces/{name}."""

    location: str
    tags: Tags | None = None


class WorkspaceUpdateParameters(WireModel):
    """Body of PATCH .../workspaces/{name}: only the tags can change."""

    tags: Tags | None = None


class WorkspaceProperties(WireModel):
    """State the service keeps about a workspace; nothing in it is settable."""

    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None


class Workspace(Resource):
    """Answer of GET/PUT/PATCH of a workspace."""

    properties: WorkspaceProperties | None = None


class WorkspaceListResult(WireModel):
    """One page of workspaces."""

    value: list[Workspace] | None = None
    next_link: str | None = None


__all__ = [
    "Workspace",
    "WorkspaceCreateParameters",
    "WorkspaceListResult",
    "WorkspaceProperties",
    "WorkspaceUpdateParameters",
]
