"""Placement and sizing policy: pure functions, no I/O, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typing import Any

from shared.autoscale import Demand, choose_removals, target_size
from shared.models.cluster import ScaleSettings
from shared.scheduler import IDLE, LEAVING, PREPARING, RUNNING, UNUSABLE, NodeView, choose_nodes, free_nodes

NOW = datetime(2026, 1, 1, tzinfo=UTC)
IDLE_TIMEOUT = timedelta(seconds=60)


def scale(wire: dict[str, Any]) -> ScaleSettings:
    """Scale settings as a cluster's create gives them (wire JSON)."""
    return ScaleSettings.model_validate(wire, strict=False)


AUTO = scale({"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4, "initialNodeCount": 0}})


def node(n: int, state: str = IDLE, job: str | None = None, idle_for: float = 0) -> NodeView:
    return NodeView(f"node-{n:04d}", state, job, 1 if job else 0, NOW - timedelta(seconds=idle_for))


def test_free_nodes_are_idle_unheld_nodes_lowest_id_first() -> None:
    nodes = [node(3), node(1, RUNNING, "j"), node(2), node(4, PREPARING), node(5, LEAVING)]
    assert [n.node_id for n in free_nodes(nodes)] == ["node-0002", "node-0003"]


def test_a_gang_gets_all_its_nodes_or_none() -> None:
    free = free_nodes([node(1), node(2), node(3)])
    assert choose_nodes(2, free) == ["node-0001", "node-0002"]
    assert choose_nodes(3, free) == ["node-0001", "node-0002", "node-0003"]
    assert choose_nodes(4, free) is None
    assert choose_nodes(0, free) is None


def test_manual_size_is_the_target() -> None:
    manual = scale({"manual": {"targetNodeCount": 3, "nodeDeallocationOption": "requeue"}})
    assert target_size(manual, [], Demand([5, 5]), NOW, IDLE_TIMEOUT) == 3


def test_autoscale_starts_at_initial_size_and_grows_to_queued_work_up_to_max() -> None:
    initial = scale({"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 4, "initialNodeCount": 2}})
    assert target_size(initial, [], Demand(), NOW, IDLE_TIMEOUT) == 2
    assert target_size(AUTO, [], Demand([1]), NOW, IDLE_TIMEOUT) == 1
    assert target_size(AUTO, [node(1, RUNNING, "a")], Demand([2]), NOW, IDLE_TIMEOUT) == 3
    assert target_size(AUTO, [], Demand([1] * 50), NOW, IDLE_TIMEOUT) == 4


def test_autoscale_keeps_recently_idle_nodes_and_returns_long_idle_ones_down_to_min() -> None:
    nodes = [node(1, idle_for=10), node(2, idle_for=120), node(3, RUNNING, "j")]
    assert target_size(AUTO, nodes, Demand(), NOW, IDLE_TIMEOUT) == 2
    everyone_idle = [node(1, idle_for=120), node(2, idle_for=120)]
    assert target_size(AUTO, everyone_idle, Demand(), NOW, IDLE_TIMEOUT) == 0
    at_least_one = scale({"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 4}})
    assert target_size(at_least_one, everyone_idle, Demand(), NOW, IDLE_TIMEOUT) == 1


def test_autoscale_counts_preparing_nodes_as_coming() -> None:
    assert target_size(AUTO, [node(1, PREPARING), node(2, PREPARING)], Demand([1]), NOW, IDLE_TIMEOUT) == 2


def test_removals_take_unusable_then_preparing_then_idle_newest_first_then_running() -> None:
    nodes = [node(1, RUNNING, "a"), node(2), node(3), node(4, PREPARING), node(5, UNUSABLE), node(6, RUNNING, "b")]
    assert choose_removals(nodes, 4).remove == ["node-0005", "node-0004", "node-0003", "node-0002"]
    shrink = choose_removals(nodes, 5)
    assert shrink.running == ["node-0006"]
    assert choose_removals(nodes, 0).remove == []


def test_removals_never_count_nodes_already_leaving() -> None:
    shrink = choose_removals([node(1, LEAVING), node(2)], 1)
    assert shrink.remove == ["node-0002"]
