"""The watchdog on the embedded adapters with a controllable clock: lost heartbeats, the control
plane's own absence, the retry budget and maxWallClockTime (shared/watchdog.py)."""

from __future__ import annotations

from typing import Any

from shared import nodes, pools, watchdog
from shared.api import jobs
from shared.composition import Services
from shared.documents.resources import ClusterDocument
from shared.ports.state_store import Query
from tests.integration.test_dispatch_and_scaling import (WS, call, cluster_doc, dispatch, job, make_cluster,
                                                         reconcile, svc, uid)

__all__ = ["svc"]  # the fixture, shared with the dispatcher's tests


def registered(svc: Services) -> list[str]:
    """Every node's agent has registered (and so is watched) and beats now."""
    ids = []
    for doc in nodes.list_docs(svc.store, uid(svc)):
        nodes.change(svc.store, doc.pk, doc.node_id, lambda d: setattr(d, "credential", "hash") or True)
        watchdog.beat(svc, doc.pk, doc.node_id)
        ids.append(doc.node_id)
    return ids


def rounds(svc: Services, count: int, beating: list[str], every: float = 2.0) -> None:
    """`count` timer rounds `every` seconds apart; the nodes in `beating` heartbeat before each."""
    for _ in range(count):
        svc.clock.advance(every)
        for node_id in beating:
            watchdog.beat(svc, uid(svc), node_id)
        reconcile(svc)


def submit(svc: Services, name: str, node_count: int, **properties: Any) -> None:
    call(jobs.create, svc, {"experimentName": "e", "jobName": name},
         {"properties": {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": node_count, "stdOutErrPathPrefix": "/tmp",
                         "customToolkitSettings": {"commandLine": "true"}, **properties}})


def test_a_silent_node_is_lost_its_job_requeued_and_the_node_replaced(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    first, second = registered(svc)
    reconcile(svc)  # the watchdog's first round: from now on it judges
    submit(svc, "pair", 2)
    dispatch(svc)
    assert job(svc, "pair")["state"] == "running" and job(svc, "pair")["attempt"] == 1
    rounds(svc, 3, beating=[first])  # 6 s: the second node's last beat is exactly the grace old
    assert job(svc, "pair")["state"] == "running"
    rounds(svc, 1, beating=[first])
    doc = job(svc, "pair")
    assert doc["state"] in ("queued", "running") and doc.get("retries") == 1
    assert doc["history"][-1]["code"] == "NodeHeartbeatLost"
    assert second not in {n.node_id for n in nodes.list_docs(svc.store, uid(svc))}  # removed from the pool
    assert len(svc.pool.list_nodes(pools.pool_id(ClusterDocument.load(cluster_doc(svc))))) == 2  # and replaced


def test_after_the_control_plane_was_away_every_node_gets_a_fresh_grace(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    registered(svc)
    reconcile(svc)
    svc.clock.advance(120)  # nobody could heartbeat to a control plane that was down
    reconcile(svc)
    assert all(n.state == "idle" for n in nodes.list_docs(svc.store, uid(svc)))
    assert len(nodes.list_docs(svc.store, uid(svc))) == 2


def test_when_the_retry_budget_is_spent_the_job_fails_with_its_node_errors(svc: Services) -> None:
    svc.settings.job_retry_budget = 1
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    registered(svc)
    reconcile(svc)
    submit(svc, "unlucky", 1)
    for attempt in (1, 2):
        dispatch(svc)
        assert job(svc, "unlucky")["attempt"] == attempt
        rounds(svc, 4, beating=[])  # its node falls silent and is replaced
        for doc in nodes.list_docs(svc.store, uid(svc)):  # the replacement registers
            nodes.set_state(svc.store, doc.pk, doc.node_id, "idle", svc.clock.now())
        registered(svc)
    props = job(svc, "unlucky")["resource"]["properties"]
    assert props["executionState"] == "failed"
    codes = [e["code"] for e in props["executionInfo"]["errors"]]
    assert codes[0] == "RetryBudgetSpent" and codes.count("NodeHeartbeatLost") == 2


def test_a_job_past_its_max_wall_clock_time_fails(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    beating = registered(svc)
    reconcile(svc)
    submit(svc, "slow", 1, constraints={"maxWallClockTime": "PT5S"})
    dispatch(svc)
    rounds(svc, 2, beating=beating)
    assert job(svc, "slow")["state"] == "running"
    rounds(svc, 1, beating=beating)
    props = job(svc, "slow")["resource"]["properties"]
    assert props["executionState"] == "failed"
    assert props["executionInfo"]["errors"][0]["code"] == "MaxWallClockTimeExceeded"


def test_heartbeat_records_of_departed_nodes_are_dropped(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    registered(svc)
    watchdog.beat(svc, uid(svc), "node-gone")
    reconcile(svc)
    records = svc.store.query(watchdog.H, Query(where={"pk": uid(svc)}), pk=uid(svc))
    assert not any(r["id"].endswith("|node-gone") for r in records)


def test_a_running_job_whose_nodes_no_longer_hold_it_is_requeued(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    beating = registered(svc)
    reconcile(svc)
    submit(svc, "orphan", 1)
    dispatch(svc)
    [node_id] = job(svc, "orphan")["nodes"]
    nodes.release(svc.store, uid(svc), node_id, job(svc, "orphan")["id"], 1, svc.clock.now())  # a crash's leftover
    rounds(svc, 1, beating=beating)
    doc = job(svc, "orphan")
    assert doc["history"][-1]["code"] == "AttemptRepaired" and doc.get("retries", 0) == 0
    assert doc["attempt"] == 2 and doc["state"] == "running"  # placed again at once on the freed node


def test_a_restarted_control_plane_gives_every_node_a_fresh_grace(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    registered(svc)
    reconcile(svc)
    rounds(svc, 1, beating=[])  # the last round before the host went down
    svc.clock.advance(3)  # down and up again: a gap the watchdog cannot tell from a slow round
    watchdog.resume_all(svc)  # what the local host does when it starts
    rounds(svc, 1, beating=[])  # the nodes' last beats are 7 s old, but nobody could beat meanwhile
    assert len(nodes.list_docs(svc.store, uid(svc))) == 2
    assert all(n.state == "idle" for n in nodes.list_docs(svc.store, uid(svc)))
