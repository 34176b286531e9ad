"""Requests by Service Bus message (shared/submissions.py is the service's side): a job to create or
a cluster to resize, sent with the azure-servicebus SDK to Azure or to a local host's Service Bus
door, and — when asked — the outcome read back from the reply queue.

The message id is the request's id: sending the same request again with the same id (a retry after
a timeout, say) makes the job once. The caller's token, when it has one, travels as the message's
`Authorization` property; without it the queue's own principal and its role assignments decide.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, TypeVar

from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.client.errors import ApiError, ClientError, ServiceUnreachable
from shared.models import REDACTED
from shared.ports.messaging import bounded_message_id

M = TypeVar("M", bound=BaseModel)

JOB_SUBMISSIONS, CLUSTER_RESIZES, REPLIES = "job-submissions", "cluster-resizes", "submission-replies"


class Outcome(BaseModel):
    """The service's answer to one request: the resource it made or changed, or its CloudError."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    message_id: str
    status: int
    id: str | None = None
    resource: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def raise_for_status(self) -> Outcome:
        if self.status >= 400:
            error = self.error or {}
            raise ApiError(self.status, error.get("code", f"HTTP{self.status}"), error.get("message", ""),
                           error.get("target"), error.get("details"))
        return self

    def resource_as(self, model: type[M]) -> M:
        """The accepted request's resource as the service's model (a Job, a Cluster)."""
        self.raise_for_status()
        return model.model_validate(self.resource or {}, strict=False, context=REDACTED)


class RequestQueue:
    """Send requests to the service's queues; one connection per call, closed after it."""

    def __init__(self, connection_string: str, token: str | None = None, reply_to: str = REPLIES) -> None:
        self.connection_string = connection_string
        self.token = token
        self.reply_to = reply_to

    def submit_job(self, subscription: str, group: str, workspace: str, experiment: str, name: str,
                   body: dict[str, Any], *, message_id: str | None = None, wait: float | None = None) -> str | Outcome:
        """Queue a job's creation (`body` is what the HTTP PUT takes); its message id, or with
        `wait` (seconds) the outcome."""
        path = {"subscriptionId": subscription, "resourceGroupName": group, "workspaceName": workspace,
                "experimentName": experiment, "jobName": name}
        return self._request(JOB_SUBMISSIONS, {"path": path, "body": body}, message_id, wait)

    def resize_cluster(self, subscription: str, group: str, workspace: str, cluster: str,
                       scale_settings: dict[str, Any], *, message_id: str | None = None,
                       wait: float | None = None) -> str | Outcome:
        """Queue a change of a cluster's scaleSettings, as the HTTP PATCH would make it."""
        path = {"subscriptionId": subscription, "resourceGroupName": group, "workspaceName": workspace,
                "clusterName": cluster}
        body = {"properties": {"scaleSettings": scale_settings}}
        return self._request(CLUSTER_RESIZES, {"path": path, "body": body}, message_id, wait)

    def _request(self, queue: str, envelope: dict[str, Any], message_id: str | None,
                 wait: float | None) -> str | Outcome:
        message_id = bounded_message_id(message_id or uuid.uuid4().hex)
        correlation = uuid.uuid4().hex  # this call's own: a resend's reply is told apart from ours
        message = ServiceBusMessage(json.dumps(envelope), message_id=message_id, correlation_id=correlation,
                                    reply_to=self.reply_to if wait is not None else None,
                                    application_properties={"Authorization": f"Bearer {self.token}"}
                                    if self.token else None, content_type="application/json")
        with self._client() as client:
            try:
                with client.get_queue_sender(queue) as sender:
                    sender.send_messages(message)
                if wait is None:
                    return message_id
                return self._reply(client, correlation, wait)
            except ServiceBusError as exc:
                raise ServiceUnreachable(f"Cannot reach the queue '{queue}': {_first_line(exc)}") from None

    def _reply(self, client: ServiceBusClient, correlation: str, wait: float) -> Outcome:
        """Our reply, taken off the reply queue; others' replies are left for their callers."""
        deadline = time.monotonic() + wait
        with client.get_queue_receiver(self.reply_to, prefetch_count=0) as receiver:
            while (left := deadline - time.monotonic()) > 0:
                for reply in receiver.receive_messages(max_message_count=10, max_wait_time=min(left, 1.0)):
                    if reply.correlation_id == correlation:
                        receiver.complete_message(reply)
                        return Outcome.model_validate(json.loads(b"".join(reply.body)))
                    receiver.abandon_message(reply)
        raise ClientError(f"No answer on the queue '{self.reply_to}' within {wait:g} s; the request may still be "
                          "applied (a resend with the same message id makes it once).")

    def _client(self) -> ServiceBusClient:
        try:
            return ServiceBusClient.from_connection_string(self.connection_string)
        except ValueError as exc:
            raise ClientError(f"The Service Bus connection string is not valid: {exc}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
