"""Cluster sizing as pure functions: how many nodes a cluster should have, and which to give back.

Manual clusters have the size the user set. Auto-scale clusters grow to fit every queued job (up to
maximumNodeCount) and give back nodes that stayed idle longer than the idle timeout (down to
minimumNodeCount). Shrinking takes unusable, then preparing, then idle nodes; only then nodes that run
jobs, which `nodeDeallocationOption` decides the fate of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.models.cluster import ScaleSettings

from shared.scheduler import IDLE, LEAVING, PREPARING, RUNNING, UNUSABLE, NodeView


@dataclass(frozen=True)
class Demand:
    """The cluster's work: nodes per queued job (in dispatch order)."""

    queued: Sequence[int] = ()


def target_size(scale: ScaleSettings, nodes: Sequence[NodeView], demand: Demand, now: datetime,
                idle_timeout: timedelta) -> int:
    """The number of nodes the cluster should have now."""
    if scale.manual is not None:
        return scale.manual.target_node_count
    auto = scale.auto_scale
    assert auto is not None  # ScaleSettings holds exactly one of the two
    low, high = auto.minimum_node_count, auto.maximum_node_count
    live = [n for n in nodes if n.state != LEAVING]
    busy = sum(1 for n in live if n.state == RUNNING or n.job is not None)
    if not live and not demand.queued:  # a new cluster starts at its initial size
        return max(low, min(high, auto.initial_node_count))
    keep = sum(1 for n in live if n.job is None and (
        n.state == PREPARING or (n.state == IDLE and (n.since is None or now - n.since < idle_timeout))))
    wanted = max(busy + sum(demand.queued), busy + keep)
    return max(low, min(high, wanted))


@dataclass(frozen=True)
class Shrink:
    """Nodes to remove: `remove` at once; `running` hold jobs (their fate is the deallocation option)."""

    remove: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)


def choose_removals(nodes: Sequence[NodeView], excess: int) -> Shrink:
    """The `excess` nodes to give back: the least useful first, newest first within a kind."""
    if excess <= 0:
        return Shrink()
    candidates = [n for n in nodes if n.state != LEAVING]
    rank = {UNUSABLE: 0, PREPARING: 1, IDLE: 2}

    def kind(n: NodeView) -> int:
        return rank.get(n.state, 3) if n.job is None else 3

    newest_first = sorted(candidates, key=lambda n: n.node_id, reverse=True)
    chosen = sorted(newest_first, key=kind)[:excess]  # stable: newest first within a kind
    return Shrink(remove=[n.node_id for n in chosen if n.job is None and n.state != RUNNING],
                  running=[n.node_id for n in chosen if n.job is not None or n.state == RUNNING])
