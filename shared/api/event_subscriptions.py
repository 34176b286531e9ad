"""Event subscriptions (beside Batch AI's API, under a workspace): webhooks that receive the
workspace's job events as CloudEvents. Create checks where the endpoint is (shared/
webhook_destinations.py) and runs the CloudEvents webhook validation handshake first, so nothing is
stored for an endpoint the service may not send to or that did not agree to receive events. A
workspace's subscriptions go with it (they are its children in the store, deleted by its delete)."""

from __future__ import annotations

import logging
import math
import uuid
from urllib.parse import urlsplit

import httpx

from shared import errors, resources
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, int_param, page_of, parse_body
from shared.composition import Services
from shared.documents.resources import (EventSubscriptionDocument, EventSubscriptionResourceProperties,
                                        SubscriptionSecret)
from shared.ids import EVENT_SUBSCRIPTION
from shared.models.event_subscription import EventSubscriptionCreateParameters
from shared.resources import envelope
from shared.webhook_destinations import DestinationRefused

log = logging.getLogger(__name__)
ENDPOINT_TARGET = "properties.destination.endpointUrl"
LOCAL_ORIGIN = "batchai.local"  # the WebHook-Request-Origin when the service has no public endpoint


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    """PUT: create, or replace the destination, filter and secret of an existing subscription."""
    ref = route_ref(EVENT_SUBSCRIPTION, req)
    params = parse_body(EventSubscriptionCreateParameters, req).properties
    resources.require_parent(svc.store, ref)
    public = params.to_wire()  # the properties as reads return them (wire JSON, compared as such)
    public["hasSecret"] = params.secret is not None
    spec = SubscriptionSecret(secret=params.secret)
    existing = resources.load(svc.store, ref, EventSubscriptionDocument)
    endpoint = params.destination.endpoint_url
    if existing is None or existing.resource.properties.destination.endpoint_url != endpoint:
        with svc.webhooks.handshake_slot() as slot:
            if not slot:
                return busy(svc)
            handshake(svc, endpoint)

    def build() -> EventSubscriptionDocument:
        now = timestamp(svc.clock.now())
        properties = public | {"creationTime": now, "provisioningState": "succeeded",
                               "provisioningStateTransitionTime": now}
        return resources.new_document(ref, EventSubscriptionDocument, envelope(ref, properties), spec,
                                      uid=uuid.uuid4().hex)

    def reconcile(doc: EventSubscriptionDocument) -> bool:
        props = doc.resource.properties
        kept = {"creationTime": props.creation_time, "provisioningState": props.provisioning_state,
                "provisioningStateTransitionTime": props.provisioning_state_transition_time}
        given = {k: v for k, v in props.wire_json().items() if k not in kept}
        if given == public and (doc.spec or SubscriptionSecret()) == spec:
            return False
        doc.resource.properties = EventSubscriptionResourceProperties.model_validate(public | kept)
        doc.spec = spec
        return True

    return put_resource(svc, ref, EventSubscriptionDocument, build, reconcile)


def handshake(svc: Services, endpoint: str) -> None:
    """The CloudEvents webhook validation: OPTIONS with WebHook-Request-Origin; the endpoint must
    answer 200 with a WebHook-Allowed-Origin of that origin or '*'. An endpoint the service may not
    send to is a 400 saying why; any other failure is one neutral 400 (whether it could not be
    reached, timed out or answered otherwise is not told: that would map ports behind it)."""
    origin = urlsplit(svc.settings.public_endpoint).hostname or LOCAL_ORIGIN
    try:
        destination = svc.webhooks.check(endpoint)
    except DestinationRefused as exc:
        if exc.permanent:
            raise errors.InvalidParameter(exc.reason, target=ENDPOINT_TARGET,
                                          code="WebHookEndpointNotAllowed") from None
        raise refused(origin, exc.reason) from None
    try:
        answer = svc.webhooks.send(destination, "OPTIONS", {"WebHook-Request-Origin": origin})
    except httpx.HTTPError as exc:
        raise refused(origin, type(exc).__name__) from None
    if answer.status_code != 200:
        raise refused(origin, f"HTTP {answer.status_code}")
    allowed = [o.strip() for o in answer.headers.get("WebHook-Allowed-Origin", "").split(",")]
    if origin not in allowed and "*" not in allowed:
        raise refused(origin, "no matching WebHook-Allowed-Origin")


def refused(origin: str, why: str) -> errors.ApiError:
    """The same answer for every failed handshake; why it failed goes to the log only."""
    log.info("webhook validation handshake failed: %s", why)
    return errors.InvalidParameter(
        "The webhook endpoint did not pass the CloudEvents validation handshake. It must answer an HTTP OPTIONS "
        f"request carrying WebHook-Request-Origin with 200 and a WebHook-Allowed-Origin that allows '{origin}'.",
        target=ENDPOINT_TARGET, code="WebHookValidationFailed")


def busy(svc: Services) -> ApiResponse:
    """429 when every handshake slot is taken: the caller retries, no API worker waits."""
    wait = max(1, math.ceil(svc.settings.event_delivery_timeout_seconds))
    return ApiResponse(429, errors.cloud_error(
        "TooManyRequests", f"Too many webhook validation handshakes are under way; retry after {wait} s.",
        target=ENDPOINT_TARGET), {"Retry-After": str(wait)})


def list_dead_letters(svc: Services, req: ApiRequest) -> ApiResponse:
    """Deliveries given up after the last attempt, oldest first, with the reason of each."""
    ref = route_ref(EVENT_SUBSCRIPTION, req)
    doc = resources.require(svc.store, ref, EventSubscriptionDocument)
    max_results = int_param(req, "maxresults", 1000, 1, 1000)
    return page_of([d.model_dump(mode="json", by_alias=True) for d in doc.dead_letters], req, max_results)

