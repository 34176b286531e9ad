"""VM pool port: the machines of one cluster.

A VM scale set on Azure (one per cluster; low priority becomes Spot with eviction policy Delete);
locally, one node agent process per node, each on its own loopback address (127.0.0.2, ...).

The pool only makes and removes machines. Every machine runs the node agent, which finds the
control plane from `AgentBootstrap`, registers (trading the pool's bootstrap token for a per-node
credential) and from then on reports the node's state itself. Which nodes to remove is the
control plane's choice (`remove_nodes`); `resize` is for growth, or for shrinking when any node will do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

NodeState = Literal["creating", "running", "deleting", "failed"]


@dataclass(frozen=True)
class AgentBootstrap:
    """What an agent needs to find and join the control plane."""

    endpoint: str  # base URL of the control plane, e.g. http://127.0.0.1:7071
    cluster_id: str  # the cluster's ARM resource id
    token: str = field(repr=False)  # the pool's bootstrap secret; never logged
    # Where the agent sends its spans and metrics: {"exporter", "endpoint", "directory"} (shared/telemetry.py).
    telemetry: Mapping[str, str] = field(default_factory=dict)
    # VMs only: the cluster's ssh key pair (mpirun between nodes; the private key is a secret) and the
    # signed URL of the agent bundle the VM installs (shared/node_package.py). The local pool uses neither.
    ssh_private_key: str = field(default="", repr=False)
    ssh_public_key: str = ""
    agent_url: str = field(default="", repr=False)


@dataclass(frozen=True)
class PoolSpec:
    pool_id: str  # [a-z0-9-], at most 60 characters; one pool per cluster
    vm_size: str
    vm_priority: Literal["dedicated", "lowpriority"]
    image_reference: Mapping[str, Any]  # Batch AI's imageReference (publisher, offer, sku, version, virtualMachineImageId)
    admin_user_name: str
    admin_password: str | None = field(default=None, repr=False)
    admin_ssh_public_key: str | None = None
    subnet_id: str | None = None
    location: str = "local"
    bootstrap: AgentBootstrap | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolNode:
    node_id: str  # stable within the pool: the scale set's instance id, or the local node's name
    address: str  # private IP address (locally 127.0.0.x)
    state: NodeState
    details: str = ""  # why a node failed, for the cluster's errors


class PoolError(Exception):
    """A pool operation failed (quota, a refused request, a time-out); the message says why."""


class PoolNotFound(PoolError):
    """The pool does not exist."""


class VmPool(ABC):
    """The port. Implementations must be safe to share between threads."""

    @abstractmethod
    def create_pool(self, spec: PoolSpec) -> None:
        """Create the pool with no nodes; an existing pool is left as it is."""

    @abstractmethod
    def delete_pool(self, pool_id: str) -> None:
        """Remove the pool and every node in it; nothing happens if it does not exist."""

    @abstractmethod
    def resize(self, pool_id: str, capacity: int) -> None:
        """Ask for `capacity` nodes in all (nodes being deleted do not count). PoolNotFound if missing.
        Returns once the change is accepted; new nodes show in list_nodes as creating meanwhile."""

    @abstractmethod
    def remove_nodes(self, pool_id: str, node_ids: Sequence[str]) -> None:
        """Remove these nodes (unknown ids and a missing pool are ignored); the capacity drops by as
        many. Returns once the removal is accepted; removed nodes stop counting at once."""

    @abstractmethod
    def list_nodes(self, pool_id: str) -> list[PoolNode]:
        """The pool's nodes, ordered by node id. PoolNotFound if missing."""

    def close(self) -> None:
        """Release connections (the nodes themselves keep running)."""
