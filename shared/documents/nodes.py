"""The documents beside the resources: nodes, their heartbeats, leases, subscription role assignments."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.documents.base import Document, StoredModel
from shared.documents.resources import RoleAssignmentResource

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


class HeldAttempt(BaseModel):
    """The attempt an agent holds, and whether it still works toward its report."""

    model_config = ConfigDict(extra="forbid")
    job: str = Field(max_length=1000)
    attempt: int = Field(ge=1)
    live: bool


class Work(BaseModel):
    """What a heartbeat says the agent runs. `idle_seconds` is how long it has had no live work at
    all (a duration measured by the node: no clock skew); None from an agent that does not say."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)
    running: HeldAttempt | None = None
    idle_seconds: float | None = Field(default=None, alias="idleSeconds", ge=0, le=1e9, allow_inf_nan=False)

    def lacks(self, job: str, attempt: int) -> bool:
        """The agent has no live work for this attempt."""
        held = self.running
        return held is None or (held.job, held.attempt) != (job, attempt) or not held.live


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
