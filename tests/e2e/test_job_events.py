"""Job events end to end: the real local host, real agents and jobs, and webhook receivers that the
test runs on 127.0.0.1. Every change of a job reaches a subscription once and signed; a webhook that
fails recovers through retries; one that never recovers ends in the dead-letter list; the API
refuses an endpoint that fails the validation handshake and never returns a secret."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.polling import wait_until
from tests.e2e.hosts import running_host
from tests.e2e.test_cluster_scheduling import WS, BatchAI
from tests.integration.test_event_delivery import Receiver, receivers

__all__ = ["receivers"]  # the fixture, shared with the integration tests

HOST_ENV = {"BATCHAI_HEARTBEAT_SECONDS": "0.5", "BATCHAI_EVENT_DELIVERY_BACKOFF_SECONDS": "0.2",
            "BATCHAI_EVENT_DELIVERY_ATTEMPTS": "4"}
SUCCEEDED = "Microsoft.BatchAI.JobSucceeded"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("job-events") / "state", HOST_ENV) as host:
        yield host


@pytest.fixture(scope="module")
def api(host: LocalHostProcess) -> Iterator[BatchAI]:
    client = BatchAI(host)
    client.cluster("events", {"manual": {"targetNodeCount": 1}})
    client.wait_idle_nodes("events", 1)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_subscriptions_left(api: BatchAI) -> Iterator[None]:
    """Each case starts with none: a failed case leaves nothing that another would see."""
    yield
    for subscription in api.http.get(f"{WS}/eventSubscriptions").json()["value"]:
        api.http.delete(f"{WS}/eventSubscriptions/{subscription['name']}")


def subscribe(api: BatchAI, receivers: list[Receiver], name: str, receiver: Receiver, **properties: Any) -> None:
    if receiver not in receivers:
        receivers.append(receiver)
    body = {"properties": {"destination": {"endpointUrl": receiver.url}, **properties}}
    answer = api.http.put(f"{WS}/eventSubscriptions/{name}", json=body)
    assert answer.status_code == 200, answer.text


def test_every_change_of_a_job_arrives_once_and_signed(api: BatchAI, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    subscribe(api, receivers, "all", receiver, secret="s3cret", filter={"experiments": ["e"]})
    api.job("evented", "events", "true")
    assert api.wait_state("evented", "succeeded", "failed")["executionState"] == "succeeded"
    wait_until("three events", lambda: len(receiver.received) >= 3, 15, describe=receiver.events)
    time.sleep(2.5)  # more than an outbox timer round: nothing arrives twice
    got = sorted(receiver.events(), key=lambda e: int(e["sequence"]))  # deliveries run in parallel
    assert [e["sequence"] for e in got] == ["1", "2", "3"]
    assert [(e["data"]["previousState"], e["data"]["state"]) for e in got] == [
        (None, "queued"), ("queued", "running"), ("running", "succeeded")], got
    assert len({e["id"] for e in got}) == 3
    assert {e["source"] for e in got} == {f"{WS}/experiments/e/jobs/evented"}
    assert got[-1]["data"]["exitCode"] == 0 and got[-1]["data"]["attempt"] == 1
    for headers, body in receiver.received:
        assert headers["x-batchai-signature"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    shown = api.http.get(f"{WS}/eventSubscriptions/all")
    assert shown.status_code == 200 and "s3cret" not in shown.text and shown.json()["properties"]["hasSecret"]
    assert api.http.delete(f"{WS}/eventSubscriptions/all").status_code == 200
    assert api.http.get(f"{WS}/eventSubscriptions/all").status_code == 404


def test_a_webhook_that_fails_three_times_then_recovers_gets_the_event(api: BatchAI,
                                                                       receivers: list[Receiver]) -> None:
    flaky = Receiver(failures=3)
    subscribe(api, receivers, "flaky", flaky, filter={"eventTypes": [SUCCEEDED]})
    api.job("retried", "events", "true")
    api.wait_state("retried", "succeeded")
    wait_until("the event after three failures", lambda: flaky.received, 15)
    assert flaky.attempts == 4
    [event] = flaky.events()
    assert event["type"] == SUCCEEDED and event["subject"] == "experiments/e/jobs/retried"
    assert api.http.get(f"{WS}/eventSubscriptions/flaky/deadLetters").json()["value"] == []


def test_a_webhook_that_never_recovers_ends_in_the_dead_letter_list(api: BatchAI, receivers: list[Receiver]) -> None:
    broken = Receiver(failures=1000, status=500)
    subscribe(api, receivers, "broken", broken, filter={"eventTypes": [SUCCEEDED]})
    api.job("undelivered", "events", "true")
    api.wait_state("undelivered", "succeeded")

    def dead_letters() -> list[dict[str, Any]]:
        return list(api.http.get(f"{WS}/eventSubscriptions/broken/deadLetters").json()["value"])

    [dead] = wait_until("the delivery to be dead-lettered", dead_letters, 20)
    assert dead["attempts"] == 4 and broken.attempts == 4
    assert dead["statusCode"] == 500 and "500" in dead["reason"]
    assert dead["source"] == f"{WS}/experiments/e/jobs/undelivered"


def test_an_endpoint_that_refuses_the_handshake_is_a_400(api: BatchAI, receivers: list[Receiver]) -> None:
    refusing = Receiver(allow="elsewhere.example")
    receivers.append(refusing)
    answer = api.http.put(f"{WS}/eventSubscriptions/refused",
                          json={"properties": {"destination": {"endpointUrl": refusing.url}}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == "properties.destination.endpointUrl"
    assert api.http.get(f"{WS}/eventSubscriptions/refused").status_code == 404
    bad = api.http.put(f"{WS}/eventSubscriptions/bad", json={"properties": {"destination": {"endpointUrl": "x"}}})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "properties.destination.endpointUrl"


def test_subscriptions_are_listed_in_pages(api: BatchAI, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    for name in ("p1", "p2"):
        subscribe(api, receivers, name, receiver)
    first = api.http.get(f"{WS}/eventSubscriptions", params={"maxresults": 1}).json()
    assert [s["name"] for s in first["value"]] == ["p1"] and first["nextLink"]
    # The link as given: a client's default params would replace its query.
    second = httpx.get(first["nextLink"], timeout=30, headers=api.host.headers).json()
    assert [s["name"] for s in second["value"]] == ["p2"] and "nextLink" not in second
