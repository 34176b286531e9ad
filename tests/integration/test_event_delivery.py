"""Job events and their webhook delivery on the embedded store and queues, a manual clock and a tiny
HTTP receiver on 127.0.0.1: the outbox publishes each change once (also after a failed send), the
fan-out delivers to each matching subscription, failed attempts come back after their backoff, the
last one is dead-lettered with its reason, and the API refuses an endpoint that fails the handshake."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared import event_delivery, events, lanes
from shared.api import event_subscriptions
from shared.api.generic import delete_resource
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.errors import ApiError
from shared.ids import EVENT_SUBSCRIPTION, WORKSPACE
from shared.ports.messaging import MessagingError, subscription_path
from shared.ports.state_store import Query
from shared.resources import R
from tests.integration.test_dispatch_and_scaling import (Q, ROUTE, dispatch, finish, job, make_cluster, submit,
                                                         svc)

__all__ = ["svc"]  # the fixture, shared with the dispatcher's tests
FANOUT = subscription_path(events.JOB_EVENTS_TOPIC, events.WEBHOOKS_SUBSCRIPTION)


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers the handshake, fails the first `failures` POSTs
    with `status`, records every POST it accepted."""

    def __init__(self, failures: int = 0, status: int = 500, allow: str | None = "*") -> None:
        self.failures, self.status, self.allow = failures, status, allow
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:  # noqa: N802 (http.server's naming)
                self.send_response(200)
                if receiver.allow is not None:
                    self.send_header("WebHook-Allowed-Origin", receiver.allow)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request (a killed host): nothing was delivered
                    self.close_connection = True
                    return
                receiver.attempts += 1
                failing = receiver.attempts <= receiver.failures
                if not failing:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.stop()


@pytest.fixture
def bus(svc: Services) -> Services:
    """The dispatcher's services with the job-events topic and its subscription, as the host makes them."""
    for topic, (options, subscriptions) in lanes.STATIC_TOPICS.items():
        svc.messaging.create_topic(topic, options)
        for name, sub_options in subscriptions.items():
            svc.messaging.create_subscription(topic, name, sub_options)
    svc.settings.event_delivery_backoff_seconds = 1
    svc.settings.event_delivery_backoff_max_seconds = 4
    svc.settings.event_delivery_attempts = 4
    return svc


def api(handler: Any, svc: Services, method: str, name: str, body: Any = None) -> tuple[int, Any]:
    req = ApiRequest(method, "http://h/x", route={**ROUTE, "eventSubscriptionName": name}, query=Q,
                     body=b"" if body is None else json.dumps(body).encode())
    return answered(handler, svc, req)


def answered(handler: Any, svc: Services, req: ApiRequest) -> tuple[int, Any]:
    """(status, body) of an API handler, an ApiError answered as the HTTP layer answers it."""
    try:
        answer = handler(svc, req)
    except ApiError as exc:
        return exc.status, exc.body()
    return answer.status, answer.body


def subscribe(svc: Services, receivers: list[Receiver], name: str, receiver: Receiver | None = None,
              **properties: Any) -> Receiver:
    receiver = receiver or Receiver()
    receivers.append(receiver)
    status, body = api(event_subscriptions.create, svc, "PUT", name,
                       {"properties": {"destination": {"endpointUrl": receiver.url}, **properties}})
    assert status == 200, body
    return receiver


def pump(svc: Services) -> int:
    """Run the fan-out and every delivery that is due now, as the host's triggers would; how many ran."""
    ran = 0
    for entity, handler in ((FANOUT, event_delivery.fan_out), (events.DELIVERIES_QUEUE, event_delivery.deliver)):
        while received := svc.messaging.receive(entity, 10):
            for message in received:
                handler(svc, message.body)
                svc.messaging.complete(entity, message)
                ran += 1
    return ran


def run_job(svc: Services, name: str = "j", exit_code: int = 0) -> None:
    submit(svc, name)
    dispatch(svc)
    finish(svc, name, exit_code)


def test_every_change_reaches_each_subscription_once_signed(bus: Services, receivers: list[Receiver]) -> None:
    make_cluster(bus, {"manual": {"targetNodeCount": 1}})
    signed = subscribe(bus, receivers, "signed", secret="s3cret")
    plain = subscribe(bus, receivers, "plain")
    run_job(bus)
    assert job(bus, "j").get("outbox") is None, "the outbox is emptied once published"
    pump(bus)
    for receiver in (signed, plain):
        got = receiver.events()
        assert [(e["data"]["previousState"], e["data"]["state"]) for e in got] == [
            (None, "queued"), ("queued", "running"), ("running", "succeeded")]
        assert len({e["id"] for e in got}) == 3
        assert all(h["content-type"].startswith("application/cloudevents+json") for h, _ in receiver.received)
    for headers, body in signed.received:
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["x-batchai-signature"] == f"sha256={expected}"
    assert all("x-batchai-signature" not in h for h, _ in plain.received)
    assert pump(bus) == 0, "nothing is delivered twice"


def test_filters_choose_what_a_subscription_gets(bus: Services, receivers: list[Receiver]) -> None:
    make_cluster(bus, {"manual": {"targetNodeCount": 1}})
    ends = subscribe(bus, receivers, "ends", filter={"eventTypes": ["Microsoft.BatchAI.JobSucceeded",
                                                                    "Microsoft.BatchAI.JobFailed"]})
    elsewhere = subscribe(bus, receivers, "elsewhere", filter={"experiments": ["other"]})
    run_job(bus, exit_code=2)
    pump(bus)
    assert [e["data"]["state"] for e in ends.events()] == ["failed"]
    assert ends.events()[0]["data"]["exitCode"] == 2
    assert elsewhere.events() == []


def test_a_failing_endpoint_is_retried_with_backoff_then_gets_the_event(bus: Services,
                                                                        receivers: list[Receiver]) -> None:
    queued = {"eventTypes": ["Microsoft.BatchAI.JobQueued"]}
    flaky = subscribe(bus, receivers, "flaky", Receiver(failures=3), filter=queued)
    steady = subscribe(bus, receivers, "steady", filter=queued)
    make_cluster(bus, {"manual": {"targetNodeCount": 1}})  # no dispatch: the job stays queued
    submit(bus, "j")
    events.sweep(bus)  # the job stays queued: the timer records and publishes its creation
    pump(bus)
    assert len(steady.events()) == 1, "a failing endpoint holds no other back"
    assert (flaky.attempts, flaky.events()) == (1, [])
    for wait in (1, 2, 4):  # each retry is due only after its backoff
        bus.clock.advance(wait - 0.01)
        assert pump(bus) == 0
        bus.clock.advance(0.01)
        assert pump(bus) == 1
    assert flaky.attempts == 4 and len(flaky.events()) == 1
    assert flaky.events()[0]["id"] == steady.events()[0]["id"]


def test_an_endpoint_that_never_recovers_ends_in_the_dead_letter_list(bus: Services,
                                                                      receivers: list[Receiver]) -> None:
    subscribe(bus, receivers, "broken", Receiver(failures=100, status=503))
    make_cluster(bus, {"manual": {"targetNodeCount": 1}})  # no dispatch: the job stays queued
    submit(bus, "j")
    events.sweep(bus)
    pump(bus)
    for _ in range(5):
        bus.clock.advance(10)
        pump(bus)
    status, body = api(event_subscriptions.list_dead_letters, bus, "GET", "broken")
    assert status == 200
    [dead] = body["value"]
    assert dead["attempts"] == 4 and dead["statusCode"] == 503 and "503" in dead["reason"]
    assert dead["eventType"] == "Microsoft.BatchAI.JobQueued" and dead["event"]["id"] == dead["eventId"]
    assert receivers[0].attempts == 4


def test_a_failed_publish_stays_in_the_outbox_until_the_timer_sends_it_once(bus: Services,
                                                                            receivers: list[Receiver],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = subscribe(bus, receivers, "r")
    make_cluster(bus, {"manual": {"targetNodeCount": 1}})
    real_send = bus.messaging.send

    def down(entity: str, messages: Any) -> None:
        if entity == events.JOB_EVENTS_TOPIC:
            raise MessagingError("the topic is unreachable")
        real_send(entity, messages)

    real_send_each = bus.messaging.send_each

    def each_down(batches: Any) -> None:
        if any(entity == events.JOB_EVENTS_TOPIC for entity, _ in batches):
            raise MessagingError("the topic is unreachable")
        real_send_each(batches)

    monkeypatch.setattr(bus.messaging, "send", down)
    monkeypatch.setattr(bus.messaging, "send_each", each_down)
    run_job(bus)
    left = job(bus, "j")["outbox"]
    assert [e["data"]["state"] for e in left] == ["queued", "running", "succeeded"]
    monkeypatch.setattr(bus.messaging, "send", real_send)
    monkeypatch.setattr(bus.messaging, "send_each", real_send_each)
    bus.messaging.send(events.JOB_EVENTS_TOPIC, [events.message(left[0])])  # as if a send had arrived, then crashed
    events.sweep(bus)
    events.sweep(bus)
    assert job(bus, "j").get("outbox") is None
    pump(bus)
    assert [e["id"] for e in receiver.events()] == [e["id"] for e in left], "each event once, in order"


def test_a_refused_handshake_is_a_400_naming_the_endpoint_and_stores_nothing(bus: Services,
                                                                             receivers: list[Receiver]) -> None:
    for receiver in (Receiver(allow=None), Receiver(allow="someone-else.example")):
        receivers.append(receiver)
        status, body = api(event_subscriptions.create, bus, "PUT", "refused",
                           {"properties": {"destination": {"endpointUrl": receiver.url}}})
        assert status == 400 and body["error"]["target"] == "properties.destination.endpointUrl", body
    status, body = api(event_subscriptions.create, bus, "PUT", "refused",
                       {"properties": {"destination": {"endpointUrl": "http://127.0.0.1:9/nobody"}}})
    assert status == 400 and body["error"]["target"] == "properties.destination.endpointUrl"
    assert bus.store.query(R, Query(where={"kind": EVENT_SUBSCRIPTION.name})) == []


def test_a_secret_is_never_returned_and_a_repeat_put_changes_nothing(bus: Services, receivers: list[Receiver]) -> None:
    receiver = subscribe(bus, receivers, "s", secret="s3cret")
    status, body = api(event_subscriptions.create, bus, "PUT", "s",
                       {"properties": {"destination": {"endpointUrl": receiver.url}, "secret": "s3cret"}})
    assert status == 200 and "s3cret" not in json.dumps(body) and body["properties"]["hasSecret"] is True
    assert body["type"] == "Microsoft.BatchAI/EventSubscriptions" and body["name"] == "s"


def test_deleting_the_workspace_deletes_its_subscriptions(bus: Services, receivers: list[Receiver]) -> None:
    subscribe(bus, receivers, "a")
    subscribe(bus, receivers, "b")
    assert len(bus.store.query(R, Query(where={"kind": EVENT_SUBSCRIPTION.name}))) == 2
    req = ApiRequest("DELETE", "http://h/x", route=ROUTE, query=Q)
    assert delete_resource(WORKSPACE, bus, req).status == 200
    assert bus.store.query(R, Query(where={"kind": EVENT_SUBSCRIPTION.name})) == []
