"""VM pool port: the machines of one cluster.

A VM scale set on Azure (one per cluster; low priority becomes Spot with eviction policy Delete);
locally, one node agent process per node, each on its own loopback address (127.0.0.2, ...).

The pool only makes and removes machines. Every machine runs the node agent, which finds the
control plane from `AgentBootstrap`, registers (trading the pool's bootstrap token for a per-node
credential) and from then on reports the node's state itself. Which nodes to remove is the
control plane's choice (`remove_nodes`); `resize` is for growth, or for shrinking when any node will do.

Only a node the pool made may register (`made`), and where the pool can hand each node a secret of
its own (`gives_node_tokens`: the local pool writes each node's bootstrap file), a node gets
`node_token(token, node_id)` instead of the pool's token, so that it can register as itself only.
A scale set's VMs share one custom data, so they all carry the pool's token.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

NodeState = Literal["creating", "running", "deleting", "failed"]


def node_token(pool_token: str, node_id: str) -> str:
    """One node's bootstrap secret, derived from the pool's: the control plane checks it without
    asking the pool, and whoever holds it can register as that node and no other."""
    return hmac.new(pool_token.encode(), b"node\n" + node_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AgentBootstrap:
    """What an agent needs to find and join the control plane."""

    endpoint: str  # base URL of the control plane, e.g. http://127.0.0.1:7071
    cluster_id: str  # the cluster's ARM resource id
    token: str = field(repr=False)  # the pool's bootstrap secret; never logged
    # Where the agent sends its spans and metrics: {"exporter", "endpoint", "directory"} (shared/telemetry.py).
    telemetry: Mapping[str, str] = field(default_factory=dict)


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

    gives_node_tokens = False  # True: each node's bootstrap carries node_token(), never the pool's token

    @abstractmethod
    def create_pool(self, spec: PoolSpec) -> None:
        """Create the pool with no nodes; an existing pool is left as it is. Returns once the creation
        is accepted (never waits for a long operation): until it is done the pool lists no nodes and a
        resize waits for a later call; a creation that failed is a PoolError of later calls."""

    @abstractmethod
    def delete_pool(self, pool_id: str) -> None:
        """Remove the pool and every node in it; nothing happens if it does not exist. Returns once the
        deletion is accepted; the pool is gone (PoolNotFound) when it is done."""

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

    def made(self, pool_id: str, node_id: str) -> bool:
        """Whether the pool made this node and has it still (creating or running): only such a
        node may register. PoolNotFound if the pool is missing."""
        return any(n.node_id == node_id and n.state in ("creating", "running") for n in self.list_nodes(pool_id))

    def close(self) -> None:
        """Release connections (the nodes themselves keep running)."""
