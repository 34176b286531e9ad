"""Heartbeat rate limit: a node that beats more often than heartbeat_min_interval_seconds gets 429
with Retry-After and no store write; the agent takes a 429 as "slow down", never as a failure."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from node_bootstrap.agent import heartbeat_pause
from shared import nodes, watchdog
from shared.api import agent
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from tests.integration.test_dispatch_and_scaling import make_cluster, svc, uid

__all__ = ["svc"]
SECRET = "node-credential"


def beat(svc: Services, node_key: str) -> ApiResponse:
    return agent.heartbeat(svc, ApiRequest("POST", "http://h/agent/heartbeat", body=b"{}",
                                           headers={agent.NODE_HEADER: node_key, agent.CREDENTIAL_HEADER: SECRET}))


def a_registered_node(svc: Services) -> str:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    [doc] = nodes.list_docs(svc.store, uid(svc))
    nodes.change(svc.store, doc.pk, doc.node_id, lambda d: setattr(d, "credential", nodes.hash_secret(SECRET)) or True)
    return doc.id


def last_beat(svc: Services, node_key: str) -> str | None:
    doc = svc.store.read(watchdog.H, uid(svc), node_key)
    return doc["at"] if doc else None


def test_a_beat_too_soon_is_refused_with_retry_after_and_not_written(svc: Services) -> None:
    node_key = a_registered_node(svc)
    assert beat(svc, node_key).status == 200
    written = last_beat(svc, node_key)
    svc.clock.advance(0.05)
    refused = beat(svc, node_key)
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert refused.body["error"]["code"] == "TooManyRequests"
    assert last_beat(svc, node_key) == written  # the refused beat wrote nothing
    svc.clock.advance(svc.settings.heartbeat_min_interval_seconds)
    assert beat(svc, node_key).status == 200
    assert last_beat(svc, node_key) != written


def test_nodes_are_limited_each_on_their_own() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert agent.beat_too_soon("a", now, 0.2) == 0
    assert agent.beat_too_soon("b", now, 0.2) == 0
    assert 0.19 < agent.beat_too_soon("a", now, 0.2) <= 0.2


def test_the_agent_slows_down_on_429_and_goes_on() -> None:
    slow_down = httpx.Response(429, headers={"Retry-After": "3"})
    assert heartbeat_pause(slow_down, 2.0) == 3.0
    assert heartbeat_pause(httpx.Response(429, headers={"Retry-After": "1"}), 2.0) == 2.0
    assert heartbeat_pause(httpx.Response(429, headers={"Retry-After": "soon"}), 2.0) == 2.0
    assert heartbeat_pause(httpx.Response(200), 2.0) == 2.0
