"""The control plane's safety net for invariant 9: an attempt that a node holds without any live
work for it is noticed within seconds and the job fails, never left `running`. The real agent API
(heartbeats, reports), the real watchdog round and the embedded store, with a controllable clock;
each heartbeat body is what the node agent sends (node_bootstrap/agent.py `Agent.work`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import errors, nodes
from shared.api import agent
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from tests.integration.test_agent_credentials import with_credentials
from tests.integration.test_dispatch_and_scaling import dispatch, job, make_cluster, reconcile, svc, uid
from tests.integration.test_watchdog import submit

__all__ = ["svc"]
BEAT = 2.0  # the default heartbeat; the grace is 3 of them


def post(handler: Any, svc: Services, node_id: str, secret: str, body: dict[str, Any]) -> ApiResponse:
    headers = {agent.NODE_HEADER: nodes.node_key(uid(svc), node_id), agent.CREDENTIAL_HEADER: secret}
    return handler(svc, ApiRequest("POST", "http://h/agent", body=json.dumps(body).encode(), headers=headers))


def running(job_key: str, attempt: int, live: bool) -> dict[str, Any]:
    return {"job": job_key, "attempt": attempt, "live": live}


class Node:
    """One node of a 1-node cluster, holding the attempt of job "one"."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        make_cluster(svc, {"manual": {"targetNodeCount": 1}})
        [(self.id, self.secret)] = with_credentials(svc).items()
        reconcile(svc)  # the watchdog's first round: from now on it judges
        submit(svc, "one", 1)
        dispatch(svc)
        self.job = job(svc, "one")
        assert self.job["state"] == "running" and self.job["nodes"] == [self.id]

    def beats(self, count: int, work: Any) -> None:
        """`count` heartbeats BEAT seconds apart, each followed by a watchdog round; `work(t)` is
        the body at `t` seconds from the first of them."""
        for i in range(count):
            self.svc.clock.advance(BEAT)
            assert post(agent.heartbeat, self.svc, self.id, self.secret, work(i * BEAT)).status == 200
            reconcile(self.svc)

    def state(self) -> str:
        return str(job(self.svc, "one")["state"])


def test_a_node_whose_attempt_died_without_a_report_fails_the_job_within_seconds(svc: Services) -> None:
    node = Node(svc)
    node.beats(1, lambda t: {"running": running(node.job["id"], 1, True), "idleSeconds": 0})
    # the attempt's thread ended without a report (0.5 s before the next beat)
    node.beats(3, lambda t: {"running": running(node.job["id"], 1, False), "idleSeconds": t + 0.5})
    assert node.state() == "running"  # 4.5 s without live work: within the grace
    node.beats(1, lambda t: {"running": running(node.job["id"], 1, False), "idleSeconds": 6.5})
    props = job(svc, "one")["resource"]["properties"]
    assert props["executionState"] == "failed", props
    [error] = props["executionInfo"]["errors"]
    assert error["code"] == "AttemptVanished" and node.id in error["message"], error
    assert job(svc, "one").get("retries", 0) == 0  # the job's failure, not its node's
    [doc] = nodes.list_docs(svc.store, uid(svc))
    assert doc.state == "idle" and doc.job is None  # the healthy node takes work again


def test_a_node_that_says_it_runs_nothing_while_it_holds_the_attempt_fails_the_job(svc: Services) -> None:
    node = Node(svc)
    node.beats(3, lambda t: {"running": None, "idleSeconds": 100 + t})  # within the grace of the claim
    assert node.state() == "running"
    node.beats(1, lambda t: {"running": None, "idleSeconds": 200})
    assert node.state() == "failed"
    assert job(svc, "one")["resource"]["properties"]["executionInfo"]["errors"][0]["code"] == "AttemptVanished"


def test_an_attempt_that_is_only_starting_is_left_alone(svc: Services) -> None:
    """The agent has not yet been told (it says nothing, or the attempt before), then starts it."""
    node = Node(svc)
    node.beats(2, lambda t: {"running": None, "idleSeconds": 3600})
    node.beats(1, lambda t: {"running": None, "idleSeconds": 0})  # switching to it
    node.beats(10, lambda t: {"running": running(node.job["id"], 1, True), "idleSeconds": 0})
    assert node.state() == "running"


def test_a_node_that_reported_is_not_judged_by_its_idle_heartbeats(svc: Services) -> None:
    node = Node(svc)
    body = {"job": node.job["id"], "attempt": 1, "exitCode": 3}
    node.beats(1, lambda t: {"running": running(node.job["id"], 1, True), "idleSeconds": 0})
    assert post(agent.report, svc, node.id, node.secret, body).status == 200
    node.beats(10, lambda t: {"running": running(node.job["id"], 1, False), "idleSeconds": t})
    [error] = job(svc, "one")["resource"]["properties"]["executionInfo"]["errors"]
    assert error["code"] == "JobFailed"  # the node's own report decided it


def test_heartbeats_that_do_not_say_what_runs_are_no_evidence(svc: Services) -> None:
    node = Node(svc)
    node.beats(10, lambda t: {})
    assert node.state() == "running"


def test_a_stale_attempts_report_is_still_refused(svc: Services) -> None:
    """Invariant 3 holds beside the net: once the attempt vanished, its late report changes nothing."""
    node = Node(svc)
    node.beats(5, lambda t: {"running": None, "idleSeconds": 100})
    assert node.state() == "failed"
    with pytest.raises(errors.ApiError) as refused:
        post(agent.report, svc, node.id, node.secret, {"job": node.job["id"], "attempt": 1, "exitCode": 0})
    assert refused.value.status == 409
    assert node.state() == "failed"


@pytest.mark.parametrize("body, target", [
    ({"running": {"job": "j", "attempt": 0, "live": True}}, "running.attempt"),
    ({"running": {"job": "j", "attempt": 1}}, "running.live"),
    ({"idleSeconds": -1}, "idleSeconds"),
    ({"idleSeconds": "soon"}, "idleSeconds"),
    ({"runs": None}, "runs"),
])
def test_a_malformed_heartbeat_is_refused_naming_the_field(svc: Services, body: dict[str, Any], target: str) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    [(node_id, secret)] = with_credentials(svc).items()
    with pytest.raises(errors.ApiError) as refused:
        post(agent.heartbeat, svc, node_id, secret, body)
    assert refused.value.status == 400 and refused.value.target == target
