"""Gang placement, as a pure function: which idle nodes a job gets, if it can have them all now.

Ordering of jobs is the lanes' (priority, then submission); here only node choice is decided,
deterministically (lowest node ids first), so that a test can predict every placement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.documents.nodes import NodeState
from shared.models.cluster import ScaleSettings

PRIORITIES = ("high", "normal", "low")  # lane order: the dispatcher serves the first non-empty lane

# Node states of Batch AI's API, and the one the service adds internally for nodes it is removing.
PREPARING: Final = "preparing"
IDLE: Final = "idle"
RUNNING: Final = "running"
LEAVING: Final = "leaving"
UNUSABLE: Final = "unusable"
NODE_STATES: tuple[NodeState, ...] = (IDLE, RUNNING, PREPARING, UNUSABLE, LEAVING)


@dataclass(frozen=True)
class NodeView:
    """What placement and scaling need to know of a node."""

    node_id: str
    state: NodeState
    job: str | None = None  # key of the job whose attempt holds the node
    attempt: int = 0
    since: datetime | None = None  # when it entered its state


def free_nodes(nodes: Iterable[NodeView]) -> list[NodeView]:
    """Idle nodes that no attempt holds, lowest id first."""
    return sorted((n for n in nodes if n.state == IDLE and n.job is None), key=lambda n: n.node_id)


def choose_nodes(node_count: int, free: Sequence[NodeView]) -> list[str] | None:
    """All `node_count` nodes for one job, or None: a gang gets every node at once or none."""
    if node_count < 1 or len(free) < node_count:
        return None
    return [n.node_id for n in free[:node_count]]


def largest_size(scale: ScaleSettings) -> int:
    """The most nodes a cluster's scale settings allow it to have: a job needing more never fits."""
    if scale.auto_scale is not None:
        return scale.auto_scale.maximum_node_count
    assert scale.manual is not None  # ScaleSettings holds exactly one of the two
    return scale.manual.target_node_count
