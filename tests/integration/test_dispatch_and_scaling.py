"""The dispatcher and the pool manager over the real embedded store and queues, with an in-memory
VM pool and a manual clock: placement order, gangs, idempotence, crash repair and every way a
cluster shrinks, decided in milliseconds without processes. Agents are played by calling the same
core functions the agent API calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import cluster_work, events, lane_repair, lanes, nodes
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.api import clusters, experiments, jobs, workspaces
from shared.api.agent import current_assignment
from shared.documents.nodes import NodeDocument
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.documents.resources import ClusterDocument
from shared.documents.resources import JobDocument
from shared.ports.clock import ManualClock
from shared.ports.messaging import subscription_path
from shared.resources import CONTAINERS, R
from shared.settings import Settings
from shared.wakeups import Wakeups
from tests.integration.fake_pool import FakeVmPool

SUB, RG = "sub", "rg"
WS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/ws"
ROUTE = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws"}
Q = {"api-version": "2018-05-01"}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    services.close()


def make_services(tmp_path: Path) -> Services:
    """Embedded store and queues, an in-memory pool and a manual clock; a workspace with experiment "e"."""
    settings = Settings(data_dir=tmp_path, autoscale_idle_seconds=30)
    store = SqliteStateStore(tmp_path / "state.db")
    store.open(CONTAINERS)
    clock = ManualClock()
    services = Services(settings=settings, store=store, clock=clock, messaging=SqliteMessaging(tmp_path / "m.db", clock),
                        pool=FakeVmPool(), wakeups=Wakeups())
    for queue, options in lanes.STATIC_QUEUES.items():
        services.messaging.create_queue(queue, options)
    call(workspaces.create, services, {}, {"location": "local"})
    call(experiments.create, services, {"experimentName": "e"}, None)
    return services


def call(handler: Any, svc: Services, route: dict[str, str], body: Any) -> dict[str, Any]:
    req = ApiRequest("PUT", "http://h/x", route={**ROUTE, **route}, query=Q,
                     body=b"" if body is None else json.dumps(body).encode())
    answer = handler(svc, req)
    assert answer.status in (200, 204), answer.body
    return answer.body or {}


def make_cluster(svc: Services, scale: dict[str, Any], name: str = "c") -> dict[str, Any]:
    call(clusters.create, svc, {"clusterName": name}, {"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": scale,
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}})
    reconcile(svc, name)
    for node in nodes.list_docs(svc.store, uid(svc, name)):  # every agent registers
        nodes.set_state(svc.store, node.pk, node.node_id, "idle", svc.clock.now())
    return cluster_doc(svc, name)


def cluster_doc(svc: Services, name: str = "c") -> dict[str, Any]:
    doc = svc.store.read(R, SUB, f"cluster|{RG}|ws|{name}")
    assert doc is not None
    return doc


def uid(svc: Services, name: str = "c") -> str:
    return ClusterDocument.load(cluster_doc(svc, name)).cluster_uid


def reconcile(svc: Services, name: str = "c") -> None:
    cluster_work.run(svc, SUB, cluster_doc(svc, name)["id"], lanes.RECONCILE)


def dispatch(svc: Services, name: str = "c") -> None:
    cluster_work.run(svc, SUB, cluster_doc(svc, name)["id"], lanes.DISPATCH)


def submit(svc: Services, name: str, node_count: int = 1, priority: str = "normal", cluster: str = "c") -> None:
    call(jobs.create, svc, {"experimentName": "e", "jobName": name}, {"properties": {
        "cluster": {"id": f"{WS}/clusters/{cluster}"}, "nodeCount": node_count, "schedulingPriority": priority,
        "stdOutErrPathPrefix": "/tmp", "customToolkitSettings": {"commandLine": "true"}}})
    svc.clock.advance(0.001)


def job(svc: Services, name: str) -> dict[str, Any]:
    doc = svc.store.read(R, SUB, f"job|{RG}|ws|e|{name}")
    assert doc is not None
    return doc


def state(svc: Services, name: str) -> str:
    return job(svc, name)["state"]


def finish(svc: Services, name: str, exit_code: int = 0) -> None:
    """The master agent reports, through the same core code as the agent API."""
    from shared import job_runs

    doc = job(svc, name)

    def end(d: JobDocument) -> bool:
        job_runs.finish(d, exit_code, svc.clock.now())
        return True

    assert doc["state"] == "running"
    job_runs.transition(svc, doc["pk"], doc["id"], end)


def running(svc: Services) -> dict[str, list[str]]:
    """job name -> its nodes, for every running job."""
    out = {}
    for name in ("a", "b", "c", "d", "e", "f", "g", "h", "big", "small", "blocker"):
        doc = svc.store.read(R, SUB, f"job|{RG}|ws|e|{name}")
        if doc and doc["state"] == "running":
            out[name] = doc["nodes"]
    return out


def test_lanes_serve_high_then_normal_then_low_fifo_within(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    submit(svc, "blocker")
    dispatch(svc)
    for name, priority in (("a", "low"), ("b", "normal"), ("c", "high"), ("d", "low"), ("e", "high"), ("f", "normal")):
        submit(svc, name, priority=priority)
    order = []
    current = "blocker"
    while current:
        finish(svc, current)
        dispatch(svc)
        now_running = list(running(svc))
        current = now_running[0] if now_running else ""
        if current:
            order.append(current)
    assert order == ["c", "e", "b", "f", "a", "d"]


def test_a_new_job_wakes_the_dispatcher_only_when_a_pass_could_act(svc: Services) -> None:
    def signals() -> int:
        return svc.messaging.count(lanes.CLUSTER_WORK_QUEUE)

    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    before = signals()
    submit(svc, "a")
    assert signals() == before + 1  # an idle node: a pass can start it
    dispatch(svc)
    before = signals()
    submit(svc, "b")  # the only node is busy and the cluster cannot grow: nothing to do yet
    assert signals() == before
    finish(svc, "a")  # the freed node signals a pass of its own, and that pass finds "b"
    assert signals() == before + 1
    dispatch(svc)
    assert running(svc) == {"b": ["node-0001"]}
    make_cluster(svc, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2}}, name="auto")
    before = signals()
    submit(svc, "c", cluster="auto")  # no node, but the cluster may grow for it
    assert signals() == before + 1


def test_a_gang_waits_for_all_its_nodes_and_holds_the_line(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    submit(svc, "blocker")
    submit(svc, "big", node_count=2)
    submit(svc, "small")  # behind the gang: must not overtake it on the free node
    dispatch(svc)
    assert running(svc) == {"blocker": ["node-0001"]}
    assert state(svc, "big") == "queued" and state(svc, "small") == "queued"
    finish(svc, "blocker")
    dispatch(svc)
    assert running(svc) == {"big": ["node-0001", "node-0002"]}
    second = NodeDocument.load(nodes.list_docs(svc.store, uid(svc))[1])
    assignment = current_assignment(svc, second)
    assert assignment is not None and assignment.master is False


def test_dispatch_is_idempotent_under_repeats_and_stale_messages(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    submit(svc, "a")
    for _ in range(3):
        dispatch(svc)
    assert running(svc) == {"a": ["node-0001"]}
    assert job(svc, "a")["attempt"] == 1
    late = JobDocument.load({**job(svc, "a"), "attempt": 0})
    lanes.publish_job(svc.messaging, late)  # a late duplicate of its message
    reconcile(svc)  # the lane holds as many messages as queued jobs: nothing is published
    dispatch(svc)
    assert running(svc) == {"a": ["node-0001"]} and job(svc, "a")["attempt"] == 1
    lane = lanes.lane(uid(svc), "normal")
    assert svc.messaging.count(lane) == 0, "stale messages are drained, not left at the head"


def test_a_queued_job_whose_lane_message_was_lost_is_published_again(svc: Services,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    send = svc.messaging.send

    def crash_on_lanes(entity: str, messages: Any) -> None:
        if entity.startswith("jobs-"):
            raise RuntimeError("the process died between writing the job and publishing it")
        send(entity, messages)

    monkeypatch.setattr(svc.messaging, "send", crash_on_lanes)
    with pytest.raises(RuntimeError):
        submit(svc, "a")
    monkeypatch.undo()
    dispatch(svc)
    assert state(svc, "a") == "queued" and running(svc) == {}  # no message: no dispatch can see it
    reconcile(svc)  # the lane is one message short: maybe a create in flight
    assert running(svc) == {}
    svc.clock.advance(lane_repair.CONFIRM_SECONDS)
    reconcile(svc)  # still short: the missing message is published, then dispatched
    assert running(svc) == {"a": ["node-0001"]}


def test_jobs_waiting_longer_than_the_lanes_duplicate_window_are_not_sent_again(svc: Services) -> None:
    """The lane holds one message per queued job, however long it waits; a lost one is found among many."""
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    for name in ("a", "b", "c", "d"):
        submit(svc, name)
    dispatch(svc)  # "a" runs on the only node; b, c, d wait
    lane = lanes.lane(uid(svc), "normal")
    assert svc.messaging.count(lane) == 3
    svc.clock.advance(minutes=30)  # far past the lanes' 10-minute duplicate-detection window
    for _ in range(3):
        reconcile(svc)
    assert svc.messaging.count(lane) == 3, "no repeats of messages that are still there"
    receive = svc.messaging.receive(lane, 3)
    lost = next(m for m in receive if json.loads(m.body)["job"] == job(svc, "c")["id"])
    svc.messaging.complete(lane, lost)  # c's message is lost
    for m in receive:
        if m is not lost:
            svc.messaging.abandon(lane, m)
    reconcile(svc)
    svc.clock.advance(lane_repair.CONFIRM_SECONDS)
    reconcile(svc)
    assert svc.messaging.count(lane) == 3
    assert sorted(json.loads(m.body)["job"].rsplit("|", 1)[1] for m in svc.messaging.peek(lane, 10)) == ["b", "c", "d"]


def test_a_claim_whose_job_never_started_is_repaired(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    submit(svc, "a")
    node = nodes.list_docs(svc.store, uid(svc))[0]
    # The dispatcher died after claiming the node and before writing the job's start.
    assert nodes.claim(svc.store, node, job(svc, "a")["id"], SUB, 1, svc.clock.now())
    reconcile(svc)  # repairs, then dispatches again
    assert running(svc) == {"a": ["node-0001"]} and job(svc, "a")["attempt"] == 1


def test_a_job_the_cluster_can_never_hold_fails_at_once(svc: Services) -> None:
    make_cluster(svc, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2}})
    submit(svc, "big", node_count=3)
    doc = job(svc, "big")
    assert doc["state"] == "failed"
    assert doc["resource"]["properties"]["executionInfo"]["errors"][0]["code"] == "ClusterTooSmall"


def test_autoscale_grows_for_queued_work_and_gives_idle_nodes_back(svc: Services) -> None:
    make_cluster(svc, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 3}})
    assert nodes.list_docs(svc.store, uid(svc)) == []
    for name in "abcde":
        submit(svc, name)
    reconcile(svc)
    assert len(nodes.list_docs(svc.store, uid(svc))) == 3
    for node in nodes.list_docs(svc.store, uid(svc)):
        nodes.set_state(svc.store, node.pk, node.node_id, "idle", svc.clock.now())
    dispatch(svc)
    assert len(running(svc)) == 3
    for name in list(running(svc)):
        finish(svc, name)
    dispatch(svc)
    for name in list(running(svc)):
        finish(svc, name)
    svc.clock.advance(10)
    reconcile(svc)
    assert len(nodes.list_docs(svc.store, uid(svc))) == 3, "recently idle nodes stay"
    svc.clock.advance(31)
    reconcile(svc)
    assert nodes.list_docs(svc.store, uid(svc)) == []
    assert cluster_doc(svc)["resource"]["properties"]["allocationState"] == "steady"


@pytest.mark.parametrize("option", ["requeue", "terminate", "waitforjobcompletion"])
def test_shrinking_a_busy_cluster_follows_the_deallocation_option(svc: Services, option: str) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": option}})
    submit(svc, "a")
    submit(svc, "b")
    dispatch(svc)
    assert running(svc) == {"a": ["node-0001"], "b": ["node-0002"]}
    req = ApiRequest("PATCH", "http://h/x", route={**ROUTE, "clusterName": "c"}, query=Q,
                     body=json.dumps({"properties": {"scaleSettings": {"manual": {"targetNodeCount": 1}}}}).encode())
    assert clusters.update(svc, req).status == 200
    reconcile(svc)
    remaining = [n.node_id for n in nodes.list_docs(svc.store, uid(svc))]
    if option == "requeue":
        assert remaining == ["node-0001"] and state(svc, "b") == "queued" and job(svc, "b")["attempt"] == 1
        finish(svc, "a")
        dispatch(svc)
        assert running(svc) == {"b": ["node-0001"]} and job(svc, "b")["attempt"] == 2
    elif option == "terminate":
        assert remaining == ["node-0001"] and state(svc, "b") == "failed"
        errors = job(svc, "b")["resource"]["properties"]["executionInfo"]["errors"]
        assert errors[0]["code"] == "JobTerminatedByResize"
    else:
        leaving = nodes.list_docs(svc.store, uid(svc))[1]
        assert remaining == ["node-0001", "node-0002"] and leaving.state == "leaving"
        assert state(svc, "b") == "running"
        finish(svc, "b")
        reconcile(svc)
        assert [n.node_id for n in nodes.list_docs(svc.store, uid(svc))] == ["node-0001"]
        assert state(svc, "b") == "succeeded"


def test_a_failed_machine_requeues_its_job_and_is_replaced(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    submit(svc, "big", node_count=2)
    dispatch(svc)
    pool: FakeVmPool = svc.pool  # type: ignore[assignment]
    pool.fail(f"c{uid(svc)}", "node-0002")
    reconcile(svc)
    assert state(svc, "big") == "queued"
    assert [n.node_id for n in nodes.list_docs(svc.store, uid(svc))] == ["node-0001", "node-0003"]


def test_deleting_the_cluster_fails_its_jobs_and_removes_pool_and_lanes(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    submit(svc, "a")
    submit(svc, "b")
    dispatch(svc)
    pool_id, lane = f"c{uid(svc)}", lanes.lane(uid(svc), "normal")
    req = ApiRequest("DELETE", "http://h/x", route={**ROUTE, "clusterName": "c"}, query=Q)
    from shared.api.catalog import OPERATIONS

    delete = next(op for op in OPERATIONS if op.operation_id == "Clusters_Delete")
    assert delete.handler(svc, req).status == 200
    assert state(svc, "a") == "failed" and state(svc, "b") == "failed"
    assert pool_id not in svc.pool.pools  # type: ignore[attr-defined]
    assert not svc.messaging.entity_exists(lane)


def test_a_job_created_before_its_new_cluster_has_lanes_is_queued_and_published_by_the_first_round(
        svc: Services) -> None:
    call(clusters.create, svc, {"clusterName": "c"}, {"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}})
    submit(svc, "early")  # no pool-manager round yet: the cluster's lanes do not exist
    assert state(svc, "early") == "queued"
    reconcile(svc)
    for node in nodes.list_docs(svc.store, uid(svc)):
        nodes.set_state(svc.store, node.pk, node.node_id, "idle", svc.clock.now())
    dispatch(svc)
    assert state(svc, "early") == "running"


def test_a_new_jobs_lane_entry_and_creation_event_go_in_one_send(svc: Services) -> None:
    """One queue write for both (one transaction on the embedded queues), and the outbox is emptied."""
    for topic, (options, subscriptions) in lanes.STATIC_TOPICS.items():
        svc.messaging.create_topic(topic, options)
        for name, sub_options in subscriptions.items():
            svc.messaging.create_subscription(topic, name, sub_options)
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    sends: list[list[str]] = []
    send_each = svc.messaging.send_each

    def recorded(batches):  # type: ignore[no-untyped-def]
        sends.append([entity for entity, _ in batches])
        send_each(batches)

    svc.messaging.send_each = recorded  # type: ignore[method-assign]
    submit(svc, "a")
    lane = lanes.lane(uid(svc), "normal")
    assert sends[0] == [lane, events.JOB_EVENTS_TOPIC]
    assert svc.messaging.count(lane) == 1
    fanned = svc.messaging.receive(subscription_path(events.JOB_EVENTS_TOPIC, events.WEBHOOKS_SUBSCRIPTION), 5)
    assert [json.loads(m.body)["type"] for m in fanned] == ["Microsoft.BatchAI.JobQueued"]
    assert not job(svc, "a").get("outbox") and not job(svc, "a").get("outboxPending")
