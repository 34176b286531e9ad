"""The documents beside the resources: nodes, their heartbeats, leases, subscription role assignments."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_serializer

from shared.documents.base import Document, JsonObject, StoredModel
from shared.documents.resources import RoleAssignmentResource
from shared.models.agent import HeldAttempt as HeldAttempt  # a heartbeat's body (shared/models/agent.py),
from shared.models.agent import Work as Work  # kept as the node sent it

NODES, HEARTBEATS, LEASES, ROLE_ASSIGNMENTS = "nodes", "heartbeats", "leases", "roleAssignments"

NodeState = Literal["preparing", "idle", "running", "leaving", "unusable"]


def node_key(uid: str, node_id: str) -> str:
    return f"{uid}|{node_id}"


class NodeError(StoredModel):
    """Why a node is unusable (its setup failed, say), as the cluster's errors show it."""

    code: str
    message: str


class NodeDocument(Document):
    """One node of a cluster, partitioned by the cluster's uid (shared/nodes.py).

    A node is claimed for an attempt by an ETag-guarded write (invariant 3: one run per node)."""

    container: ClassVar[str] = NODES

    node_id: str  # the pool's node id
    cluster: str  # the cluster's store key
    cluster_pk: str
    address: str = ""  # its private address
    state: NodeState
    job: str | None = None  # key of the job whose attempt holds it
    job_pk: str | None = None
    attempt: int = 0  # that attempt's number
    since: str | None = None  # when it entered its state
    credential: str | None = None  # SHA-256 of its agent's secret (None before it registered)
    error: NodeError | None = None


class Heartbeat(Document):
    """A node's last sign of life (id: its node key), or the watchdog's own last round (id "watchdog").
    Upserted without ETags: the last writer is right."""

    container: ClassVar[str] = HEARTBEATS

    at: str
    work: Work | None = None


class ClusterLease(Document):
    """Who changes which nodes of a cluster run what, until when; and what was asked of it meanwhile
    (shared/leases.py). id "lease", pk the cluster's uid."""

    container: ClassVar[str] = LEASES

    owner: str | None = None
    expires: str | None = None
    pending: list[str] = Field(default_factory=list)


class TimerLease(Document):
    """Which host instance runs a timer's round (shared/localhost/instances.py); pk "timers"."""

    container: ClassVar[str] = LEASES

    until: str


class SubscriptionRoleAssignment(Document):
    """A subscription-wide role assignment (shared/api/role_assignments.py)."""

    container: ClassVar[str] = ROLE_ASSIGNMENTS

    resource: RoleAssignmentResource

    @field_serializer("resource")
    def _resource_out(self, resource: RoleAssignmentResource) -> JsonObject:
        return resource.wire_json()  # stored as returned (None left out), as a ResourceDocument's
