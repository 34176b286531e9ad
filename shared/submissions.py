"""Requests by queue message: a job to create, a cluster's scaleSettings to apply.

Pipelines that speak Service Bus drop a message instead of holding an HTTP connection. The
message's body is a JSON envelope:

    {"path": {"subscriptionId": ..., "resourceGroupName": ..., "workspaceName": ...,
              "experimentName": ..., "jobName": ...},          # or "clusterName" for a resize
     "body": {"properties": {...}},                            # exactly what the HTTP PUT/PATCH takes
     "apiVersion": "2018-05-01"}                               # optional

Its Service Bus properties carry the rest: the message id is the request's id (a redelivery or a
resend finds the job it made), `reply_to` (+ `reply_to_session_id`) asks for the outcome as a reply
whose correlation id is the message's correlation id (else its id), and an optional application
property `Authorization` ("Bearer <token>") names the sender; without one the sender is the
queue's own principal (`servicebus:<queue>`), which an owner grants roles like anyone else.

One code path, two doors: the request becomes an ApiRequest for the same handler the HTTP route
calls, after the same authorisation. The outcome is announced on the job-events topic (and as the
reply); a request refused with a 4xx — the envelope's problems included — is then dead-lettered
at once (PoisonMessage) with the error's code as reason and its message as description. Anything
else (a 5xx, the store away) is raised, so the message comes back and is tried again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from shared import errors, events, lanes
from shared.api import access, clusters, jobs
from shared.api.generic import timestamp
from shared.api.request import API_VERSION, ApiRequest, ApiResponse, ok, validation_error
from shared.auth.principals import Principal
from shared.composition import Services
from shared.documents.base import JsonObject, read
from shared.documents.resources import JobDocument
from shared.ids import CLUSTER, JOB, Kind, ResourceRef
from shared.models.event_subscription import JobEventType
from shared.ports.messaging import EntityNotFound, OutgoingMessage, PoisonMessage

log = logging.getLogger(__name__)
AUTHORIZATION = "Authorization"


@dataclass(frozen=True)
class RequestMessage:
    """What the door reads of a message (the Functions trigger's message, or the port's)."""

    body: bytes
    message_id: str
    application_properties: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str | None = None
    reply_to_session_id: str | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WorkspacePath(_Strict):
    subscriptionId: StrictStr
    resourceGroupName: StrictStr
    workspaceName: StrictStr


class JobPath(_WorkspacePath):
    experimentName: StrictStr
    jobName: StrictStr


class ClusterPath(_WorkspacePath):
    clusterName: StrictStr


class JobSubmission(_Strict):
    path: JobPath
    body: JsonObject  # the HTTP PUT's body, validated by the handler it is handed to
    apiVersion: StrictStr = API_VERSION


class ClusterResize(_Strict):
    path: ClusterPath
    body: JsonObject  # the HTTP PATCH's body, validated by the handler it is handed to
    apiVersion: StrictStr = API_VERSION


@dataclass(frozen=True)
class Door:
    """What differs between the two request queues."""

    queue: str
    envelope: type[JobSubmission] | type[ClusterResize]
    kind: Kind
    operation_id: str
    method: str
    handler: Callable[[Services, ApiRequest], ApiResponse]
    accepted: JobEventType
    rejected: JobEventType


JOB_SUBMISSIONS = Door(lanes.JOB_SUBMISSIONS_QUEUE, JobSubmission, JOB, "Jobs_Create", "PUT", jobs.create,
                       JobEventType.JOB_SUBMISSION_ACCEPTED, JobEventType.JOB_SUBMISSION_REJECTED)
CLUSTER_RESIZES = Door(lanes.CLUSTER_RESIZES_QUEUE, ClusterResize, CLUSTER, "Clusters_Update", "PATCH",
                       clusters.update, JobEventType.CLUSTER_RESIZE_ACCEPTED, JobEventType.CLUSTER_RESIZE_REJECTED)


def handle(svc: Services, door: Door, message: RequestMessage) -> ApiResponse:
    """Apply one request and announce its outcome; PoisonMessage when it was refused."""
    route: dict[str, str] = {}
    try:
        request = parse(svc, door, message)
        route = dict(request.route)
        principal = sender(svc, door, message)
        access.require_role(svc, principal, route, door.operation_id, door.method)
        answer = _apply(svc, door, request, message)
    except errors.ApiError as exc:
        if exc.status >= 500:
            raise  # the service's trouble, not the message's: it comes back and is tried again
        announce(svc, door, message, route or _claimed_route(message), exc.status, exc.body())
        raise PoisonMessage(exc.code, exc.message) from None
    announce(svc, door, message, route, answer.status, answer.body)
    return answer


def parse(svc: Services, door: Door, message: RequestMessage) -> ApiRequest:
    """The message as the ApiRequest its HTTP twin would be; a 4xx naming what is wrong."""
    limit = svc.settings.max_request_bytes
    if len(message.body) > limit:
        raise errors.PayloadTooLarge(f"The message body is {len(message.body)} bytes; at most {limit} are accepted.",
                                     target="body", code="MessageTooLarge")
    try:
        document = json.loads(message.body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidRequestContent(f"The message body is not JSON: {str(exc)[:200]}.", target="body",
                                           code="MessageNotJson") from None
    if not isinstance(document, dict):
        raise errors.InvalidRequestContent(
            f"The message body must be a JSON object with 'path' and 'body'; it is a JSON {type(document).__name__}.",
            target="body", code="InvalidMessage")
    try:
        envelope = door.envelope.model_validate(document)
    except ValidationError as exc:
        refused = validation_error(exc)
        raise errors.InvalidRequestContent(refused.message, target=refused.target, details=refused.details,
                                           code="InvalidMessage") from None
    if door is CLUSTER_RESIZES and "scaleSettings" not in (envelope.body.get("properties") or {}):
        raise errors.InvalidRequestContent("A resize request needs body.properties.scaleSettings.",
                                           target="body.properties.scaleSettings", code="InvalidMessage")
    route = envelope.path.model_dump()
    ResourceRef.from_route(door.kind, route)  # each name against the API's patterns (400 naming it)
    return ApiRequest(door.method, f"servicebus://{door.queue}/{message.message_id}", route=route,
                      query={"api-version": envelope.apiVersion}, body=json.dumps(envelope.body).encode(),
                      headers={jobs.SUBMISSION_ID_HEADER: message.message_id})


def sender(svc: Services, door: Door, message: RequestMessage) -> Principal:
    """Who sent it: the principal of its Authorization property, else the queue's own principal."""
    credential = message.application_properties.get(AUTHORIZATION)
    if credential is None:
        return Principal(f"servicebus:{door.queue}", f"a sender to the {door.queue} queue", "servicebus")
    return svc.auth.authenticate({AUTHORIZATION: str(credential)}, {}, svc.clock.now())


def _apply(svc: Services, door: Door, request: ApiRequest, message: RequestMessage) -> ApiResponse:
    """The handler's answer; a job this message already made is answered, not made again."""
    if door is JOB_SUBMISSIONS:
        ref = ResourceRef.from_route(JOB, request.route)
        made = read(svc.store, JobDocument, ref.pk, ref.key)
        if made is not None and made.submission_id == message.message_id:
            return ok(made.wire())
    return door.handler(svc, request)


def announce(svc: Services, door: Door, message: RequestMessage, route: Mapping[str, str], status: int,
             body: Any) -> None:
    """The outcome as an event on the job-events topic, and as a reply when one was asked for.
    Both carry ids made from the message id, so announcing again (a redelivery) repeats them."""
    accepted = status < 400
    resource_id = _resource_id(door, route) or f"/batchai/queues/{door.queue}"
    event_type = (door.accepted if accepted else door.rejected).value
    stable = hashlib.sha256(f"{door.queue}\n{message.message_id}\n{event_type}".encode()).hexdigest()[:32]
    correlation = message.correlation_id or message.message_id
    # why: a message body (the event's data and the reply), holding the answer's JSON as it is
    outcome: JsonObject = {"messageId": message.message_id, "correlationId": correlation, "status": status}
    if accepted:
        outcome["id"] = resource_id
    else:
        outcome |= body  # the CloudError: {"error": {...}}
    event = {"specversion": "1.0", "id": stable, "source": resource_id, "type": event_type,
             "subject": _subject(resource_id), "time": timestamp(svc.clock.now()),
             "datacontenttype": "application/json", "data": outcome}
    sends = [(events.JOB_EVENTS_TOPIC, [events.message(event)])]
    if message.reply_to:
        reply = {**outcome, "resource": body} if accepted else outcome
        sends.append((message.reply_to, [OutgoingMessage(
            json.dumps(reply, separators=(",", ":")).encode(), message_id=f"reply-{stable}",
            correlation_id=correlation, subject=event_type, session_id=message.reply_to_session_id)]))
    try:
        svc.messaging.send_each(sends)  # the event and the reply: one write on the embedded queues
    except EntityNotFound:
        if len(sends) == 1:
            raise
        log.warning("the reply to %s of message %s has no queue %r", door.queue, message.message_id,
                    str(message.reply_to)[:100])
        svc.messaging.send(*sends[0])


def _claimed_route(message: RequestMessage) -> dict[str, str]:
    """The path a refused message names, as far as it names one (its events go to that workspace)."""
    try:
        path = json.loads(message.body).get("path")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in path.items() if isinstance(v, str)} if isinstance(path, dict) else {}


def _resource_id(door: Door, route: Mapping[str, str]) -> str | None:
    try:
        return ResourceRef.from_route(door.kind, route).arm_id if route else None
    except (errors.ApiError, KeyError):
        return None


def _subject(resource_id: str) -> str:
    """As job events name theirs: the part below the workspace (experiments/e/jobs/j, clusters/c)."""
    _, found, rest = resource_id.partition("/workspaces/")
    return rest.partition("/")[2] if found else resource_id.rsplit("/", 1)[-1]
