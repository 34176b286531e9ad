"""Issue 16, item 3, over the embedded store and queues with a webhook receiver on 127.0.0.1 and a
scripted DNS given to the services by their constructor (the name `hooks.example` resolves to what
the case says): where a webhook may go is checked again before every delivery, so a name that
resolved to an allowed address at creation and resolves to a forbidden one later (DNS rebinding) is
not sent to, and its delivery is dead-lettered with the reason; every address of a name is checked;
the request goes to the address that was checked, not to a second resolution; the operator's
settings loosen loopback and private ranges, never link-local or metadata addresses."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from shared import events
from shared.api import event_subscriptions
from shared.composition import Services
from shared.ports.state_store import Query
from shared.resources import R
from shared.ids import EVENT_SUBSCRIPTION
from shared.webhook_destinations import WebhookDestinations
from tests.integration.test_dispatch_and_scaling import make_cluster, submit
from tests.integration.test_event_delivery import Receiver, api, bus, pump, receivers, svc

__all__ = ["bus", "receivers", "svc"]  # the fixtures
TARGET = "properties.destination.endpointUrl"
NAME = "hooks.example"  # .example never resolves for real: a request that re-resolved it would fail


class ScriptedDns:
    """A resolver that answers what the case set, and remembers what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return list(self.answers.get(host, []))


@pytest.fixture
def dns() -> ScriptedDns:
    return ScriptedDns()


@pytest.fixture
def hooks(bus: Services, dns: ScriptedDns) -> Services:
    """The services with the scripted resolver, given through their constructor."""
    return dataclasses.replace(bus, webhooks=WebhookDestinations(bus.settings, dns))


def create(svc: Services, name: str, url: str) -> tuple[int, Any]:
    return api(event_subscriptions.create, svc, "PUT", name, {"properties": {"destination": {"endpointUrl": url}}})


def by_name(receiver: Receiver) -> str:
    return receiver.url.replace("127.0.0.1", NAME)


def subscribed_by_name(svc: Services, dns: ScriptedDns, receivers: list[Receiver], name: str) -> Receiver:
    """A receiver on 127.0.0.1, subscribed as http://hooks.example:<port>/hook while the name resolves there."""
    receiver = Receiver()
    receivers.append(receiver)
    dns.answers[NAME] = ["127.0.0.1"]
    status, body = create(svc, name, by_name(receiver))
    assert status == 200, body
    return receiver


def queue_a_job_event(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})  # no dispatch: the job stays queued
    submit(svc, "j")
    events.sweep(svc)  # its JobQueued event goes out


def dead_letters(svc: Services, name: str) -> list[dict[str, Any]]:
    status, body = api(event_subscriptions.list_dead_letters, svc, "GET", name)
    assert status == 200, body
    return list(body["value"])


@pytest.mark.parametrize("rebound", [["169.254.169.254"], ["10.0.0.7"], ["127.0.0.1", "169.254.169.254"],
                                     ["::ffff:169.254.169.254"], ["fd00:ec2::254"]],
                         ids=["metadata", "private", "one of two", "v4-mapped metadata", "EC2 IPv6 metadata"])
def test_a_name_rebound_after_creation_is_not_sent_to_and_is_dead_lettered(
        hooks: Services, dns: ScriptedDns, receivers: list[Receiver], rebound: list[str]) -> None:
    receiver = subscribed_by_name(hooks, dns, receivers, "rebound")
    dns.answers[NAME] = rebound
    queue_a_job_event(hooks)
    pump(hooks)
    assert receiver.attempts == 0, "nothing was sent"
    [dead] = dead_letters(hooks, "rebound")
    assert dead["eventType"] == "Microsoft.BatchAI.JobQueued" and dead["statusCode"] is None
    assert dead["attempts"] == 1, "refused at once, not retried"
    assert "Not sent" in dead["reason"] and "address" in dead["reason"], dead["reason"]
    assert dns.asked.count(NAME) == 2, "resolved at creation and again at the delivery"


def test_the_request_goes_to_the_checked_address_with_the_name_as_host(hooks: Services, dns: ScriptedDns,
                                                                        receivers: list[Receiver]) -> None:
    receiver = subscribed_by_name(hooks, dns, receivers, "pinned")
    queue_a_job_event(hooks)
    pump(hooks)
    [(headers, _)] = receiver.received
    assert headers["host"] == f"{NAME}:{receiver.url.split(':')[2].split('/')[0]}"
    assert dead_letters(hooks, "pinned") == []


def test_a_name_that_no_longer_resolves_is_retried_not_dead_lettered(hooks: Services, dns: ScriptedDns,
                                                                       receivers: list[Receiver]) -> None:
    receiver = subscribed_by_name(hooks, dns, receivers, "flaky-dns")
    dns.answers[NAME] = []
    queue_a_job_event(hooks)
    pump(hooks)
    assert receiver.attempts == 0 and dead_letters(hooks, "flaky-dns") == []
    dns.answers[NAME] = ["127.0.0.1"]
    hooks.clock.advance(1)  # the first backoff
    pump(hooks)
    assert receiver.attempts == 1 and len(receiver.events()) == 1


def test_loopback_is_refused_unless_allowed(hooks: Services, dns: ScriptedDns, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    receivers.append(receiver)
    dns.answers[NAME] = ["127.0.0.1"]
    hooks.settings.webhook_allow_loopback = False  # as on Azure
    for url in (receiver.url, by_name(receiver), receiver.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")):
        status, body = create(hooks, "loop", url)
        assert status == 400 and body["error"]["target"] == TARGET, body
        assert "BATCHAI_WEBHOOK_ALLOW_LOOPBACK" in body["error"]["message"]
    assert hooks.store.query(R, Query(where={"kind": EVENT_SUBSCRIPTION.name})) == []
    assert receiver.attempts == 0
    hooks.settings.webhook_allowed_networks = [ipaddress.ip_network("127.0.0.0/8")]
    assert create(hooks, "loop", by_name(receiver))[0] == 200


def test_a_subscription_made_while_allowed_is_not_sent_to_once_the_operator_refuses_it(
        hooks: Services, dns: ScriptedDns, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    receivers.append(receiver)
    assert create(hooks, "later", receiver.url)[0] == 200
    hooks.settings.webhook_allow_loopback = False
    queue_a_job_event(hooks)
    pump(hooks)
    assert receiver.attempts == 0
    [dead] = dead_letters(hooks, "later")
    assert "loopback" in dead["reason"]


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.10.10", "fe80::1", "168.63.129.16"])
def test_no_setting_lets_link_local_or_metadata_addresses_through(hooks: Services, dns: ScriptedDns,
                                                                   address: str) -> None:
    hooks.settings.webhook_allow_loopback = True
    hooks.settings.webhook_allowed_networks = [ipaddress.ip_network(n) for n in (
        "0.0.0.0/0", "::/0", "169.254.0.0/16", "fe80::/10", "168.63.129.16/32")]
    dns.answers[NAME] = [address]
    for url in (f"http://{NAME}/hook", f"http://{address}/hook" if ":" not in address else f"http://[{address}]/hook"):
        status, body = create(hooks, "metadata", url)
        assert status == 400 and body["error"]["target"] == TARGET, body
        assert "BATCHAI_WEBHOOK" not in body["error"]["message"], "no setting is offered"
    assert hooks.store.query(R, Query(where={"kind": EVENT_SUBSCRIPTION.name})) == []


def test_a_private_network_the_operator_allows_is_accepted(hooks: Services, dns: ScriptedDns) -> None:
    dns.answers[NAME] = ["10.20.30.40"]
    status, body = create(hooks, "private", f"http://{NAME}/hook")
    assert status == 400 and "BATCHAI_WEBHOOK_ALLOWED_NETWORKS" in body["error"]["message"]
    hooks.settings.webhook_allowed_networks = [ipaddress.ip_network("10.20.0.0/16")]
    destination = hooks.webhooks.check(f"http://{NAME}/hook")  # (no request: nothing listens there)
    assert destination.addresses == (ipaddress.ip_address("10.20.30.40"),)
