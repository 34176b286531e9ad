"""Webhook delivery of job events: fan-out, one attempt at a time with backoff, signature, dead letters.

At least once, per (event, event subscription), so that one slow or failing endpoint holds back no
other: the fan-out turns each event of the job-events topic into one message per matching
subscription on the deliveries queue; each such message is one attempt. A failed attempt schedules
the next one as a new message (scheduled enqueue time = now + backoff: base, 2 x base, 4 x base ...
up to the cap), never a sleep. Message ids are (event, subscription, attempt), so a repeated fan-out
or a repeated retry is dropped by the queue's duplicate detection. After the last attempt the
delivery is kept in the subscription's dead-letter list with the reason. Before each attempt the
endpoint is checked again (its name may now resolve elsewhere): one the service may not send to is
dead-lettered at once, unsent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

from shared import telemetry
from shared.documents import base as documents
from shared.documents.base import JsonObject
from shared.documents.resources import DeadLetterRecord, EventFilterPart, EventSubscriptionDocument
from shared.events import DELIVERIES_QUEUE
from shared.ids import CLUSTER, EVENT_SUBSCRIPTION, JOB, SWEEP, ResourceRef
from shared.nodes import stamp
from shared.ports.messaging import OutgoingMessage
from shared.ports.state_store import Query
from shared.settings import Settings
from shared.webhook_destinations import DestinationRefused

if TYPE_CHECKING:
    from shared.composition import Services

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-BatchAI-Signature"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
DEAD_LETTERS_KEPT = 500  # per subscription, newest kept: the list lives in its document
# A CloudEvent as the job-events topic carries it: its `data` is any JSON (message bodies are the edge).
CloudEvent = JsonObject  # as published: any JSON its data holds


class Delivery(BaseModel):
    """The body of one delivery attempt's message on the deliveries queue: which event goes to which
    subscription (its uid: one deleted and made again gets none), and the attempt's number."""

    event: CloudEvent
    pk: str
    subscription: str
    uid: str
    attempt: int


def fan_out(svc: Services, body: bytes) -> None:
    """A job event from the topic: one delivery message per event subscription that wants it."""
    event = json.loads(body)
    job = ResourceRef.parse(event["source"], JOB) or ResourceRef.parse(event["source"], SWEEP)  # (or a sweep's)
    about = job or ResourceRef.parse(event["source"], CLUSTER)
    if about is None:  # a request by message too broken to name its resource: on the topic only
        log.info("event %s of %s goes to no webhook", event.get("type"), event["source"][:200])
        return
    subscriptions = documents.query(svc.store, EventSubscriptionDocument, Query(
        where={"kind": EVENT_SUBSCRIPTION.name, "parent": about.workspace.key}), pk=about.pk)
    # A cluster's event passes only filters that name no experiment.
    wanted = [s for s in subscriptions if matches(s.resource.properties.filter, event, job.names[1] if job else None)]
    if wanted:
        svc.messaging.send(DELIVERIES_QUEUE, [_delivery(event, s, 1) for s in wanted])


def matches(rules: EventFilterPart | None, event: CloudEvent, experiment: str | None) -> bool:
    """Whether a subscription's filter lets the event through (absent or empty lists let all)."""
    return (rules or EventFilterPart()).passes(event["type"], experiment)


def _delivery(event: CloudEvent, subscription: EventSubscriptionDocument, attempt: int,
              when: datetime | None = None) -> OutgoingMessage:
    body = Delivery(event=event, pk=subscription.pk, subscription=subscription.id, uid=subscription.uid,
                    attempt=attempt)
    return OutgoingMessage(json.dumps(body.model_dump(), separators=(",", ":")).encode(),
                           message_id=f"{event['id']}:{subscription.uid}:{attempt}", scheduled_enqueue_time=when)


def deliver(svc: Services, body: bytes) -> None:
    """One attempt of one delivery; on failure the next attempt is scheduled, or the delivery is
    dead-lettered. Raises only when that bookkeeping fails (the message then comes back)."""
    request = Delivery.model_validate_json(body)
    subscription = documents.read(svc.store, EventSubscriptionDocument, request.pk, request.subscription)
    if subscription is None or subscription.uid != request.uid:
        return  # the subscription was deleted (perhaps made again): nothing to deliver to
    event, attempt = request.event, request.attempt
    try:
        status, reason = post(svc, subscription, event)
    except DestinationRefused as exc:  # not sent; a name that could not be resolved is tried again
        if exc.permanent:
            telemetry.count_delivery("refused")
            dead_letter(svc, subscription, event, attempt, f"Not sent: {exc.reason}", None)
            return
        status, reason = None, exc.reason
    if status is not None and 200 <= status < 300:
        telemetry.count_delivery("delivered")
        return
    settings = svc.settings
    if attempt < settings.event_delivery_attempts:
        telemetry.count_delivery("retried")
        when = svc.clock.now() + timedelta(seconds=backoff(settings, attempt))
        svc.messaging.send(DELIVERIES_QUEUE, [_delivery(event, subscription, attempt + 1, when)])
        log.info("delivery of event %s to %s failed (%s); attempt %d at %s", event["id"], subscription.id, reason,
                 attempt + 1, stamp(when))
        return
    telemetry.count_delivery("dead-lettered")
    dead_letter(svc, subscription, event, attempt, reason, status)


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling, capped."""
    return float(min(settings.event_delivery_backoff_seconds * 2 ** (attempt - 1),
                     settings.event_delivery_backoff_max_seconds))


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of the exact body with the subscription's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(svc: Services, subscription: EventSubscriptionDocument, event: CloudEvent) -> tuple[int | None, str]:
    """POST the event to the subscription's endpoint, at the address just checked: (status code or
    None, reason if it failed). Raises DestinationRefused when the endpoint may not be sent to."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Content-Type": CONTENT_TYPE}
    secret = subscription.spec.secret if subscription.spec else None
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    destination = svc.webhooks.check(subscription.resource.properties.destination.endpoint_url)
    try:
        answer = svc.webhooks.send(destination, "POST", headers, body)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    return answer.status_code, f"The endpoint answered HTTP {answer.status_code}."


def dead_letter(svc: Services, subscription: EventSubscriptionDocument, event: CloudEvent, attempts: int,
                reason: str, status: int | None) -> None:
    """Keep a delivery that was given up, with why, in its subscription (read with the API)."""
    entry = DeadLetterRecord(event_id=event["id"], event_type=event["type"], source=event["source"],
                             attempts=attempts, last_attempt_time=stamp(svc.clock.now()), reason=reason,
                             status_code=status, event=event)

    def add(doc: EventSubscriptionDocument) -> bool:
        if doc.uid != subscription.uid:
            return False
        kept = doc.dead_letters
        if any(d.event_id == entry.event_id for d in kept):
            return False  # a repeated last attempt
        kept.append(entry)
        del kept[:-DEAD_LETTERS_KEPT]
        return True

    documents.edit(svc.store, EventSubscriptionDocument, subscription.pk, subscription.id, add)
    log.warning("delivery of event %s to %s dead-lettered after %d attempts: %s", event["id"], subscription.id,
                attempts, reason)
