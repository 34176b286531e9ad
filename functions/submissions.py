"""Requests by queue message (shared/submissions.py): the job-submissions and cluster-resizes queues.

A refused request raises PoisonMessage. The local host's pump dead-letters such a message itself;
a Functions host (Azure, or Core Tools — both set FUNCTIONS_WORKER_RUNTIME) would abandon it and
retry it up to the queue's max delivery count, so there the function dead-letters the trigger
message by its lock token (through Service Bus's management node) and returns. That settlement is
tested against the test broker; Azure documents it for deferred messages, so whether it takes a
message locked on the Functions host's own link is not proven here — if it does not, the refused
request is retried until the queue dead-letters it (MaxDeliveryCountExceeded)."""

from __future__ import annotations

import os
import azure.functions as func

from shared import lanes, submissions, telemetry
from shared.composition import services
from shared.ports.messaging import PoisonMessage

bp = func.Blueprint()


def request_of(msg: func.ServiceBusMessage) -> submissions.RequestMessage:
    return submissions.RequestMessage(
        body=msg.get_body(), message_id=str(msg.message_id or ""),
        application_properties=dict(msg.application_properties or {}), correlation_id=msg.correlation_id,
        reply_to=msg.reply_to, reply_to_session_id=msg.reply_to_session_id)


def serve(door: submissions.Door, msg: func.ServiceBusMessage) -> None:
    svc = services()
    try:
        submissions.handle(svc, door, request_of(msg))
    except PoisonMessage as poison:
        if not os.environ.get("FUNCTIONS_WORKER_RUNTIME"):
            raise  # the local host's pump dead-letters it
        if not msg.lock_token:
            raise
        svc.messaging.dead_letter_by_lock_token(door.queue, str(msg.lock_token), poison.reason, poison.description)


@bp.function_name("JobSubmissions")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.JOB_SUBMISSIONS_QUEUE, connection="BATCHAI_SERVICEBUS")
@telemetry.traced_function("JobSubmissions")
def job_submission(msg: func.ServiceBusMessage) -> None:
    serve(submissions.JOB_SUBMISSIONS, msg)


@bp.function_name("ClusterResizes")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.CLUSTER_RESIZES_QUEUE, connection="BATCHAI_SERVICEBUS")
@telemetry.traced_function("ClusterResizes")
def cluster_resize(msg: func.ServiceBusMessage) -> None:
    serve(submissions.CLUSTER_RESIZES, msg)
