"""Event subscriptions (beside Batch AI's API, under a workspace): webhooks that receive the
workspace's job events as CloudEvents. Create runs the CloudEvents webhook validation handshake
first, so nothing is stored for an endpoint that did not agree to receive events. A workspace's
subscriptions go with it (they are its children in the store, deleted by its delete)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared import errors, resources
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, int_param, page_of, parse_body
from shared.composition import Services
from shared.ids import EVENT_SUBSCRIPTION
from shared.models.event_subscription import EventSubscriptionCreateParameters
from shared.resources import envelope

ENDPOINT_TARGET = "properties.destination.endpointUrl"
LOCAL_ORIGIN = "batchai.local"  # the WebHook-Request-Origin when the service has no public endpoint


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    """PUT: create, or replace the destination, filter and secret of an existing subscription."""
    ref = route_ref(EVENT_SUBSCRIPTION, req)
    params = parse_body(EventSubscriptionCreateParameters, req).properties
    resources.require_parent(svc.store, ref)
    public = params.to_wire()
    public["hasSecret"] = params.secret is not None
    spec = {"secret": params.secret} if params.secret is not None else {}
    existing = resources.load(svc.store, ref)
    endpoint = params.destination.endpoint_url
    if existing is None or existing["resource"]["properties"]["destination"]["endpointUrl"] != endpoint:
        handshake(svc, endpoint)

    def build() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        now = timestamp(svc.clock.now())
        properties = public | {"creationTime": now, "provisioningState": "succeeded",
                               "provisioningStateTransitionTime": now}
        return envelope(ref, properties), spec, {"uid": uuid.uuid4().hex}

    def reconcile(doc: dict[str, Any]) -> dict[str, Any] | None:
        props = doc["resource"]["properties"]
        kept = {k: props[k] for k in ("creationTime", "provisioningState", "provisioningStateTransitionTime")}
        if {k: v for k, v in props.items() if k not in kept} == public and (doc["spec"] or {}) == spec:
            return None
        doc["resource"]["properties"] = public | kept
        doc["spec"] = spec
        return doc

    return put_resource(svc, ref, build, reconcile)


def handshake(svc: Services, endpoint: str) -> None:
    """The CloudEvents webhook validation: OPTIONS with WebHook-Request-Origin; the endpoint must
    answer 200 with a WebHook-Allowed-Origin of that origin or '*'. Anything else is a 400."""
    origin = urlsplit(svc.settings.public_endpoint).hostname or LOCAL_ORIGIN
    try:
        with httpx.Client(timeout=svc.settings.event_delivery_timeout_seconds, follow_redirects=False) as client:
            answer = client.options(endpoint, headers={"WebHook-Request-Origin": origin})
    except httpx.HTTPError as exc:
        raise refused(f"it could not be reached ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise refused(f"it answered HTTP {answer.status_code} to the validation request")
    allowed = [o.strip() for o in answer.headers.get("WebHook-Allowed-Origin", "").split(",")]
    if origin not in allowed and "*" not in allowed:
        raise refused(f"its WebHook-Allowed-Origin header does not allow the origin '{origin}'")


def refused(why: str) -> errors.ApiError:
    return errors.InvalidParameter(
        f"The webhook endpoint did not pass the CloudEvents validation handshake: {why}. It must answer an "
        "HTTP OPTIONS request carrying WebHook-Request-Origin with 200 and a matching WebHook-Allowed-Origin.",
        target=ENDPOINT_TARGET, code="WebHookValidationFailed")


def list_dead_letters(svc: Services, req: ApiRequest) -> ApiResponse:
    """Deliveries given up after the last attempt, oldest first, with the reason of each."""
    ref = route_ref(EVENT_SUBSCRIPTION, req)
    doc = resources.require(svc.store, ref)
    max_results = int_param(req, "maxresults", 1000, 1, 1000)
    return page_of(list(doc.get("deadLetters") or []), req, max_results)

